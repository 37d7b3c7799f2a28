import Glibc
import HTTP1
import IAPAuth

/// `iap-proxy echo`: a tiny upstream that answers every request with its request line, headers
/// and body length (and SHA-256) as JSON, and echoes WebSocket frames. For tests, the demo, and
/// users checking what their app will see behind iap-proxy. One loop thread, keep-alive,
/// pipelining, bodies streamed (counted, never buffered).
public final class EchoServer {
    private let loop: EventLoop
    private var listener: Listener?

    public init(listen address: SocketAddress) throws(IOError) {
        loop = try EventLoop()
        let loop = loop
        listener = try Listener(address: address, loop: loop) { fd, _ in EchoConnection.start(fd: fd, loop: loop) }
    }

    public var port: UInt16 { listener?.port ?? 0 }

    /// Serves until the process ends.
    public func run() {
        signal(SIGPIPE, SIG_IGN)
        loop.run()
    }
}

private final class EchoConnection: LoopHandler {
    private enum State {
        case head
        case body(Exchange.Body)
        case webSocket
    }

    private let fd: Int32
    private var token: EventLoop.Token?
    private let loop: EventLoop
    private let inbound = ByteBuffer()
    private let outbound = ByteBuffer()
    private var state = State.head
    private var interest: UInt32 = Readiness.readable
    private var request: RequestHead?
    private var bodyBytes = 0
    private var bodyDigest: StreamingDigest?
    private var closeAfterWrite = false
    private var idleSince: Int64

    private init(fd: Int32, loop: EventLoop) {
        self.fd = fd
        self.loop = loop
        idleSince = loop.now
    }

    static func start(fd: Int32, loop: EventLoop) {
        let connection = EchoConnection(fd: fd, loop: loop)
        guard let token = try? loop.register(fd, interest: Readiness.readable, handler: connection) else {
            Glibc.close(fd)
            return
        }
        connection.token = token
    }

    func handle(_ events: UInt32) {
        idleSince = loop.now
        if events & (Readiness.readable | Readiness.hangUp | Readiness.error) != 0 {
            let buffer = inbound.writable(minimum: 16 * 1024, preferred: 64 * 1024)
            switch (try? Socket.read(fd, into: buffer)) ?? .done(0) {
            case .wouldBlock: break
            case .done(0): return close()
            case .done(let count): inbound.commit(count)
            }
        }
        process()
        while !outbound.isEmpty {
            guard let result = try? Socket.write(fd, outbound.readable) else { return close() }
            guard case .done(let count) = result else { break }
            outbound.consume(count)
        }
        if outbound.isEmpty && closeAfterWrite { return close() }
        let wanted = outbound.isEmpty ? Readiness.readable : Readiness.writable
        if wanted != interest, let token {
            interest = wanted
            loop.modify(fd, token: token, interest: wanted)
        }
    }

    func sweep(now: Int64) {
        if now - idleSince > 300_000 { close() }
    }

    private func process() {
        while !inbound.isEmpty && !closeAfterWrite {
            switch state {
            case .head:
                switch HTTP1Parser.parseRequestHead(inbound.readable) {
                case .incomplete: return
                case .invalid(let error):
                    reply(status: error.status, json: #"{"error":"\#(error.reason)"}"#, keepAlive: false)
                    return
                case .complete(let head, let length):
                    inbound.consume(length)
                    request = head
                    bodyBytes = 0
                    bodyDigest = StreamingDigest(.sha256)
                    if let key = head.valueString("sec-websocket-key"), head.upgrade,
                        head.valueString("upgrade")?.lowercased() == "websocket"
                    {
                        acceptWebSocket(key: key)
                    } else {
                        state = .body(Exchange.Body(head.framing, limits: HTTPLimits()))
                    }
                }
            case .body(let body):
                switch body {
                case .none, .untilClose:
                    answer()
                case .length(var length):
                    let taken = length.consume(available: inbound.count)
                    count(UnsafeRawBufferPointer(rebasing: inbound.readable.prefix(taken)))
                    inbound.consume(taken)
                    state = .body(.length(length))
                    if length.isFinished { answer() }
                case .chunked(var decoder):
                    let result = decoder.decode(inbound.readable) { data in self.count(data) }
                    state = .body(.chunked(decoder))
                    guard case .success(let progress) = result else {
                        reply(status: 400, json: #"{"error":"bad chunked body"}"#, keepAlive: false)
                        return
                    }
                    inbound.consume(progress.consumed)
                    if progress.finished { answer() } else if progress.consumed == 0 { return }
                }
            case .webSocket:
                guard echoFrame() else { return }
            }
        }
        // A request without a body may be complete with nothing more to read.
        if case .body(.none) = state { answer() }
    }

    private func count(_ data: UnsafeRawBufferPointer) {
        bodyBytes += data.count
        bodyDigest?.update(data)
    }

    /// The request as JSON: what an app behind iap-proxy would see.
    private func answer() {
        guard let head = request else { return }
        var json = #"{"method":"# + quoted(head.methodString) + #","target":"# + quoted(head.targetString)
        json += #","version":"# + quoted(head.version == .http11 ? "HTTP/1.1" : "HTTP/1.0") + #","headers":["#
        json += head.fields.map { field in
            "[" + quoted(String(decoding: head.name(of: field), as: UTF8.self)) + ","
                + quoted(String(decoding: head.value(of: field), as: UTF8.self)) + "]"
        }.joined(separator: ",")
        let digest = bodyDigest?.finish().map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }
        json += #"],"body_bytes":\#(bodyBytes),"body_sha256":"# + quoted(digest?.joined() ?? "") + "}\n"
        state = .head
        request = nil
        reply(status: 200, json: json, keepAlive: head.keepAlive, bodyless: head.isHeadMethod)
    }

    private func quoted(_ text: String) -> String {
        var bytes: [UInt8] = []
        appendEscaped(text, to: &bytes)
        return "\"" + String(decoding: bytes, as: UTF8.self) + "\""
    }

    /// A JSON answer; for HEAD the same head (with the body's length) and no body.
    private func reply(status: Int, json: String, keepAlive: Bool, bodyless: Bool = false) {
        let head = "HTTP/1.1 \(status) \(status == 200 ? "OK" : ErrorPage.reasonPhrase(status))\r\n"
            + "Content-Type: application/json\r\nContent-Length: \(json.utf8.count)\r\n"
            + (keepAlive ? "" : "Connection: close\r\n") + "\r\n"
        outbound.append(Array((bodyless ? head : head + json).utf8))
        if !keepAlive { closeAfterWrite = true }
    }

    // MARK: WebSocket (RFC 6455)

    private func acceptWebSocket(key: String) {
        let accept = Base64.standard(StreamingDigest.hash(.sha1, Array((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").utf8)))
        outbound.append(
            Array(
                ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    + "Sec-WebSocket-Accept: \(accept)\r\n\r\n").utf8))
        state = .webSocket
    }

    /// Echoes one complete frame (unmasked, as a server sends); false when more bytes are needed.
    private func echoFrame() -> Bool {
        let bytes = inbound.readable
        guard bytes.count >= 2 else { return false }
        let opcode = bytes[0] & 0x0F
        let masked = bytes[1] & 0x80 != 0
        var length = Int(bytes[1] & 0x7F)
        var offset = 2
        if length == 126 {
            guard bytes.count >= 4 else { return false }
            length = Int(bytes[2]) << 8 | Int(bytes[3])
            offset = 4
        } else if length == 127 {
            guard bytes.count >= 10 else { return false }
            length = (2..<10).reduce(0) { $0 << 8 | Int(bytes[$1]) }
            offset = 10
        }
        guard length <= 16 << 20 else {
            closeAfterWrite = true
            return false
        }
        let maskOffset = offset
        if masked { offset += 4 }
        guard bytes.count >= offset + length else { return false }
        var payload = Array(bytes[offset..<(offset + length)])
        if masked { for index in payload.indices { payload[index] ^= bytes[maskOffset + index % 4] } }
        inbound.consume(offset + length)
        let replyOpcode: UInt8 = opcode == 0x9 ? 0xA : opcode  // ping → pong
        if opcode != 0xA {  // pongs are not answered
            var frame: [UInt8] = [0x80 | replyOpcode]
            if payload.count < 126 {
                frame.append(UInt8(payload.count))
            } else if payload.count <= 0xFFFF {
                frame += [126, UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
            } else {
                frame.append(127)
                frame += (0..<8).reversed().map { UInt8((payload.count >> ($0 * 8)) & 0xFF) }
            }
            outbound.append(frame + payload)
        }
        if opcode == 0x8 { closeAfterWrite = true }  // close: echoed, then closed
        return true
    }

    private func close() {
        guard let token else { return }
        self.token = nil
        loop.deregister(fd, token: token)
        Glibc.close(fd)
    }
}

/// Standard base64 with padding (the WebSocket handshake's encoding, unlike JWS's base64url).
enum Base64 {
    static func standard(_ bytes: [UInt8]) -> String {
        var text = Base64URL.encode(bytes).replacing("-", with: "+").replacing("_", with: "/")
        while text.utf8.count % 4 != 0 { text += "=" }
        return text
    }
}
