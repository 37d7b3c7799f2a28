import HTTP1
import Testing

/// Decodes `input` the way the event loop does: bytes arrive in pieces of `step`, the unconsumed tail is
/// kept and presented again with the next piece.
func decodeIncrementally(_ input: [UInt8], step: Int, limits: HTTPLimits = HTTPLimits())
    -> (body: [UInt8], outcome: Result<Int, HTTPParseError>)
{
    var decoder = ChunkedDecoder(limits: limits)
    var pending: [UInt8] = []
    var body: [UInt8] = []
    var used = 0
    var fed = 0
    while fed < input.count {
        let next = min(input.count, fed + step)
        pending += input[fed..<next]
        fed = next
        let result = pending.withUnsafeBytes { decoder.decode($0) { body += $0 } }
        switch result {
        case .failure(let error):
            return (body, .failure(error))
        case .success(let progress):
            used += progress.consumed
            pending.removeFirst(progress.consumed)
            if progress.finished { return (body, .success(used)) }
        }
    }
    return (body, .success(-1))  // unfinished
}

@Suite("Chunked decoder")
struct ChunkedDecoderTests {
    @Test("Hands out chunk data and stops exactly at the end of the message")
    func basic() throws {
        let body = "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        let (pieces, result) = decodeChunked([UInt8](body + "GET / HTTP/1.1\r\n"))
        #expect(pieces == [[UInt8]("hello"), [UInt8](" world")])
        #expect(try result.get() == ChunkedDecoder.Progress(consumed: body.utf8.count, finished: true))
    }

    @Test("Any split of the input gives the same data and end", arguments: [1, 2, 3, 7, 64])
    func incremental(step: Int) {
        let body = [UInt8]("A;x=\"q\\\"t\";y\r\n0123456789\r\n1 ; a = b\r\nZ\r\n000\r\nT: v\r\nU:\r\n\r\nNEXT")
        let (data, outcome) = decodeIncrementally(body, step: step)
        #expect(data == [UInt8]("0123456789Z"))
        #expect((try? outcome.get()) == body.count - 4)
    }

    @Test(
        "Valid chunk lines",
        arguments: [
            "a\r\n", "A\r\n", "000a\r\n", "a;x\r\n", "a ;x\r\n", "a\t; x = y\r\n", "a;x=\"\"\r\n", "a;x=\"\\\\;\"\r\n",
            "a;x;y=z;w=\"v v\"\r\n", "000000000000000a\r\n",
        ])
    func validLines(_ line: String) throws {
        let (pieces, result) = decodeChunked([UInt8](line + "0123456789\r\n0\r\n\r\n"))
        #expect(pieces == [[UInt8]("0123456789")])
        #expect(try result.get().finished)
    }

    @Test(
        "Refused chunked bodies",
        arguments: [
            ("0x5\r\nhello\r\n0\r\n\r\n", "invalid-chunk-size"),
            ("+5\r\nhello\r\n0\r\n\r\n", "invalid-chunk-size"),
            ("-5\r\nhello\r\n0\r\n\r\n", "invalid-chunk-size"),
            ("0_2e\r\n\r\n", "invalid-chunk-size"),
            (" 5\r\nhello\r\n0\r\n\r\n", "invalid-chunk-size"),
            ("5 \r\nhello\r\n0\r\n\r\n", "invalid-chunk-size"),
            ("\r\n\r\n", "invalid-chunk-size"),
            ("5\nhello\r\n0\r\n\r\n", "invalid-chunk-size"),
            ("5\r\rhello\r\n0\r\n\r\n", "bare-cr"),
            ("10000000000000000\r\n", "chunk-size-too-large"),
            ("00000000000000001\r\n", "chunk-size-too-large"),
            ("5;\r\nhello\r\n0\r\n\r\n", "invalid-chunk-extension"),
            ("5;a=\r\nhello\r\n0\r\n\r\n", "invalid-chunk-extension"),
            ("5;a \r\nhello\r\n0\r\n\r\n", "invalid-chunk-extension"),
            ("5;a b\r\nhello\r\n0\r\n\r\n", "invalid-chunk-extension"),
            ("5;a=b c\r\nhello\r\n0\r\n\r\n", "invalid-chunk-extension"),
            ("5;a=\"b\r\nhello\r\n0\r\n\r\n", "invalid-chunk-extension"),
            ("5;a=\"b\0\"\r\nhello\r\n0\r\n\r\n", "invalid-chunk-extension"),
            ("5;a=b\rc\r\nhello\r\n0\r\n\r\n", "bare-cr"),
            ("5\r\nhelloX\r\n0\r\n\r\n", "invalid-chunk-end"),
            ("5\r\nhello\n0\r\n\r\n", "invalid-chunk-end"),
            ("5\r\nhello\r0\r\n\r\n", "invalid-chunk-end"),
            ("3\r\nfoo\r\n\r\n", "invalid-chunk-size"),
            ("0\r\nA: b\r\n c\r\n\r\n", "obs-fold"),
            ("0\r\nA : b\r\n\r\n", "whitespace-before-colon"),
            ("0\r\nA: b\n\r\n", "bare-lf"),
            ("0\r\n\n", "bare-lf"),
            ("0\r\n\rX", "bare-cr"),
            ("0\r\nX:POST / HTTP/1.1\r\n\r\n", nil),
        ] as [(String, String?)])
    func refused(_ input: String, _ reason: String?) {
        let (_, result) = decodeChunked([UInt8](input))
        if let reason {
            #expect(throws: HTTPParseError(status: 400, reason: reason)) { try result.get() }
        } else {
            // A trailer field that looks like a request line is still just a trailer field.
            #expect((try? result.get())?.finished == true)
        }
    }

    @Test("Errors are reported as soon as the bad byte arrives, and the decoder stays failed")
    func early() {
        var decoder = ChunkedDecoder()
        let first = [UInt8]("1_").withUnsafeBytes { decoder.decode($0) { _ in } }
        #expect(throws: HTTPParseError.self) { try first.get() }
        let again = [UInt8]("0\r\n\r\n").withUnsafeBytes { decoder.decode($0) { _ in } }
        #expect(throws: HTTPParseError(status: 400, reason: "invalid-chunk-size")) { try again.get() }
        #expect(!decoder.isFinished)
    }

    @Test("A partial size line is left unconsumed until its CRLF arrives")
    func partialLine() throws {
        let (pieces, result) = decodeChunked([UInt8]("5;name=val"))
        #expect(pieces.isEmpty)
        #expect(try result.get() == ChunkedDecoder.Progress(consumed: 0, finished: false))
        let (_, quoted) = decodeChunked([UInt8]("5;name=\"va"))
        #expect(try quoted.get().consumed == 0)
        let (data, partialData) = decodeChunked([UInt8]("5\r\nhel"))
        #expect(data == [[UInt8]("hel")])
        #expect(try partialData.get() == ChunkedDecoder.Progress(consumed: 6, finished: false))
    }

    @Test("Chunk line limit: exactly at the limit passes, one more byte fails, also while incomplete")
    func lineLimit() throws {
        var limits = HTTPLimits()
        limits.maximumChunkLineBytes = 32
        let atLimit = "1;" + String(repeating: "x", count: 30)
        #expect(try decodeChunked([UInt8](atLimit + "\r\nZ\r\n0\r\n\r\n"), limits: limits).result.get().finished)
        let tooLong = HTTPParseError(status: 400, reason: "chunk-line-too-long")
        #expect(throws: tooLong) { try decodeChunked([UInt8](atLimit + "x\r\nZ\r\n"), limits: limits).result.get() }
        #expect(throws: tooLong) { try decodeChunked([UInt8](atLimit + "x"), limits: limits).result.get() }
        #expect(try decodeChunked([UInt8](atLimit + "\r"), limits: limits).result.get().consumed == 0)
    }

    @Test("Trailer limit: exactly at the limit passes, one more byte fails, also while incomplete")
    func trailerLimit() throws {
        var limits = HTTPLimits()
        limits.maximumTrailerBytes = 20
        let atLimit = "A: \(String(repeating: "v", count: 5))\r\nB: \(String(repeating: "w", count: 5))\r\n"
        #expect(atLimit.utf8.count == 20)  // the final empty line does not count
        #expect(try decodeChunked([UInt8]("0\r\n" + atLimit + "\r\n"), limits: limits).result.get().finished)
        let tooLarge = HTTPParseError(status: 400, reason: "trailers-too-large")
        let over = "A: \(String(repeating: "v", count: 6))\r\nB: \(String(repeating: "w", count: 5))\r\n"
        #expect(throws: tooLarge) { try decodeChunked([UInt8]("0\r\n" + over + "\r\n"), limits: limits).result.get() }
        #expect(throws: tooLarge) {
            try decodeChunked([UInt8]("0\r\nA: " + String(repeating: "v", count: 30)), limits: limits).result.get()
        }
        for step in [1, 3] {
            let (_, outcome) = decodeIncrementally([UInt8]("0\r\n" + atLimit + "\r\n"), step: step, limits: limits)
            #expect((try? outcome.get()) == 25)
        }
    }
}

@Suite("Chunked encoder and Content-Length counter")
struct ChunkedEncoderTests {
    @Test("Sizes are lowercase hex; empty data writes nothing", arguments: [1, 9, 10, 255, 256, 4096, 65537])
    func encode(size: Int) throws {
        let data = [UInt8](repeating: 0x61, count: size)
        var output: [UInt8] = []
        data.withUnsafeBytes { ChunkedEncoder.appendChunk($0, to: &output) }
        ChunkedEncoder.appendLastChunk(to: &output)
        let expected = [UInt8](String(size, radix: 16) + "\r\n") + data + [UInt8]("\r\n0\r\n\r\n")
        #expect(output == expected)
        let (pieces, result) = decodeChunked(output)
        #expect(pieces == [data])
        #expect(try result.get().consumed == output.count)
    }

    @Test("Empty data is no chunk")
    func empty() {
        var output: [UInt8] = []
        [UInt8]().withUnsafeBytes { ChunkedEncoder.appendChunk($0, to: &output) }
        #expect(output.isEmpty)
    }

    @Test("Content-Length counter")
    func counter() {
        var body = ContentLengthBody(length: 10)
        #expect(body.consume(available: 4) == 4 && body.remaining == 6 && !body.isFinished)
        #expect(body.consume(available: 100) == 6 && body.isFinished)
        #expect(body.consume(available: 5) == 0)
    }
}
