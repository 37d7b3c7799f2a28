// libFuzzer target for the HTTP/1.1 parser and chunked decoder (built by Fuzz/run.sh with
// `swiftc -sanitize=fuzzer,address` together with Sources/HTTP1). Beyond "never crash", it checks
// the invariants the proxy relies on:
// - a complete head never claims more bytes than it was given;
// - re-serializing an accepted head the way the proxy does and parsing it again gives the same
//   method, target, fields and framing (what we forward means what we parsed);
// - a chunked body decodes to the same bytes however the input is split.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTP1(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    checkRequest(input)
    checkResponse(input)
    checkChunked(input)
    return 0
}

private func checkRequest(_ input: UnsafeRawBufferPointer) {
    guard case .complete(let head, let length) = HTTP1Parser.parseRequestHead(input) else { return }
    precondition(length <= input.count, "head length beyond input")
    // The proxy refuses Host-less (HTTP/1.0) requests, since it forwards as HTTP/1.1, which needs
    // Host; and absolute-form targets. Only what it forwards must round-trip.
    guard head.host != nil, head.targetForm != .absolute else { return }
    var forwarded: [UInt8] = []
    guard RequestHeadWriter.append(head, framing: head.framing, to: &forwarded, including: { _ in true }) else { return }
    let again = forwarded.withUnsafeBytes { HTTP1Parser.parseRequestHead($0) }
    guard case .complete(let reparsed, let reparsedLength) = again else {
        preconditionFailure("a forwarded head must parse again: \(again)")
    }
    precondition(reparsedLength == forwarded.count, "forwarded head has trailing bytes")
    precondition(reparsed.bytes[reparsed.method] == head.bytes[head.method], "method changed")
    precondition(reparsed.bytes[reparsed.target] == head.bytes[head.target], "target changed")
    precondition(reparsed.framing == head.framing, "framing changed")
    precondition(reparsed.fields.count == head.fields.count, "field count changed")
}

private func checkResponse(_ input: UnsafeRawBufferPointer) {
    if case .complete(_, let length) = HTTP1Parser.parseResponseHead(input, isHeadRequest: false) {
        precondition(length <= input.count, "response head length beyond input")
    }
}

private func checkChunked(_ input: UnsafeRawBufferPointer) {
    guard input.count >= 2 else { return }
    let body = UnsafeRawBufferPointer(rebasing: input[1...])
    /// Feeds the body in two pieces, carrying unconsumed bytes over as the proxy's buffer does.
    func decode(splitAt split: Int) -> (Result<Bool, HTTPParseError>, [UInt8]) {
        var decoder = ChunkedDecoder()
        var output: [UInt8] = []
        var pending: [UInt8] = []
        for piece in [body[..<split], body[split...]] {
            pending += piece
            while !pending.isEmpty {
                let result = pending.withUnsafeBytes { decoder.decode($0) { output.append(contentsOf: $0) } }
                guard case .success(let progress) = result else { return (result.map { $0.finished }, output) }
                precondition(progress.consumed <= pending.count, "decoder consumed beyond input")
                pending.removeFirst(progress.consumed)
                if progress.finished { return (.success(true), output) }
                if progress.consumed == 0 { break }
            }
        }
        return (.success(false), output)
    }
    let whole = decode(splitAt: body.count)
    let split = decode(splitAt: Int(input[0]) % (body.count + 1))
    if case .success(true) = whole.0 {
        guard case .success(true) = split.0 else { preconditionFailure("split input did not finish") }
        precondition(whole.1 == split.1, "split changed the decoded body")
    }
}
