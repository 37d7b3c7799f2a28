import HTTP1

/// What a proxy connection did with a byte stream, driven exactly as the event loop will drive it:
/// parse a head, read its body (Content-Length counter or ChunkedDecoder), repeat while keep-alive.
struct Transcript {
    enum End: Equatable {
        /// Every byte was used and the connection stays open.
        case drained
        /// Waiting for more bytes (a head or body is unfinished).
        case incomplete
        /// The last message ended the connection (no keep-alive); later bytes are never read.
        case closed
        /// The last message switched protocols; later bytes are tunnel data.
        case upgraded
        /// Refused: the proxy answers the status and closes.
        case rejected(HTTPParseError)
    }

    struct Message {
        let head: RequestHead
        /// Lengths of the data pieces handed out, in order.
        var pieces: [Int] = []
        var body: [UInt8] = []
        var complete = false
    }

    var messages: [Message] = []
    var end = End.drained
    /// Where the last step started: the head or body that was refused or is unfinished.
    var offset = 0

    var completed: Int { messages.filter(\.complete).count }

    var rejection: HTTPParseError? {
        if case .rejected(let error) = end { return error }
        return nil
    }

    /// Runs `input` through the head parser and body decoders. `skipBody` treats every body as absent
    /// (llhttp's skipBody test mode).
    init(_ input: [UInt8], limits: HTTPLimits = HTTPLimits(), skipBody: Bool = false) {
        input.withUnsafeBytes { buffer in
            while true {
                if offset == buffer.count {
                    end = .drained
                    return
                }
                let rest = UnsafeRawBufferPointer(rebasing: buffer[offset...])
                switch HTTP1Parser.parseRequestHead(rest, limits: limits) {
                case .incomplete:
                    end = .incomplete
                    return
                case .invalid(let error):
                    end = .rejected(error)
                    return
                case .complete(let head, let length):
                    messages.append(Message(head: head))
                    offset += length
                }
                var message = messages.removeLast()
                defer { messages.append(message) }
                switch skipBody ? .none : message.head.framing {
                case .none, .untilClose:
                    break
                case .contentLength(let length):
                    var counter = ContentLengthBody(length: length)
                    let taken = counter.consume(available: buffer.count - offset)
                    if taken > 0 {
                        message.pieces.append(taken)
                        message.body += buffer[offset..<offset + taken]
                    }
                    guard counter.isFinished else {
                        end = .incomplete
                        return
                    }
                    offset += taken
                case .chunked:
                    var decoder = ChunkedDecoder(limits: limits)
                    let result = decoder.decode(UnsafeRawBufferPointer(rebasing: buffer[offset...])) { piece in
                        message.pieces.append(piece.count)
                        message.body += piece
                    }
                    switch result {
                    case .failure(let error):
                        end = .rejected(error)
                        return
                    case .success(let progress):
                        guard progress.finished else {
                            end = .incomplete
                            return
                        }
                        offset += progress.consumed
                    }
                }
                message.complete = true
                if message.head.upgrade {
                    end = .upgraded
                    return
                }
                if !message.head.keepAlive {
                    end = .closed
                    return
                }
            }
        }
    }

    /// The completed messages re-serialized as the proxy forwards them: hop-by-hop fields dropped,
    /// canonical framing written by RequestHeadWriter (the body re-encoded when chunked), and
    /// `Connection: close` on a message that ended the connection.
    func forwarded() -> [UInt8] {
        var output: [UInt8] = []
        for message in messages where message.complete {
            let head = message.head
            var extra: [ExtraField] = []
            if !head.keepAlive { extra.append(ExtraField("Connection", "close")) }
            if head.upgrade {
                extra.append(ExtraField("Connection", "upgrade"))
                extra += head.values(named: "upgrade").map {
                    ExtraField("Upgrade", String(decoding: $0, as: UTF8.self))
                }
            }
            let written = RequestHeadWriter.append(head, framing: head.framing, extraFields: extra, to: &output) {
                !HopByHop.isHopByHop(head.fields[$0], in: head)
            }
            precondition(written, "canonical extra fields are valid")
            switch head.framing {
            case .contentLength: output += message.body
            case .chunked:
                message.body.withUnsafeBytes { ChunkedEncoder.appendChunk($0, to: &output) }
                ChunkedEncoder.appendLastChunk(to: &output)
            case .none, .untilClose: break
            }
        }
        return output
    }

    /// `input` with `Host: <authority>` inserted after the request line of the head starting at `offset`.
    /// (Used where a corpus omits Host, which RFC 9112 §3.2 requires in HTTP/1.1.)
    static func insertingHost(into input: [UInt8], at offset: Int) -> [UInt8] {
        var start = offset
        while input[start...].starts(with: [13, 10]) { start += 2 }
        let lineEnd = input[start...].firstRange(of: [13, 10])!.lowerBound
        let target = input[start..<lineEnd].split(separator: 32)[1]
        var authority = [UInt8]("example.com")
        for scheme in ["http://", "https://"] where target.starts(with: scheme.utf8) {
            authority = Array(target.dropFirst(scheme.utf8.count).prefix { $0 != 47 && $0 != 63 })
        }
        return Array(input[..<lineEnd]) + [UInt8]("\r\nHost: ") + authority + input[lineEnd...]
    }
}
