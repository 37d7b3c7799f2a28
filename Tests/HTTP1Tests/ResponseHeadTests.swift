import HTTP1
import Testing

@Suite("Response heads")
struct ResponseHeadTests {
    @Test("Framing per RFC 9112 §6.3")
    func framing() throws {
        let sized = try #require(parseResponse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello").head)
        #expect(sized.framing == .contentLength(5) && sized.keepAlive && sized.status == 200)
        #expect(String(decoding: sized.bytes[sized.reason], as: UTF8.self) == "OK")
        #expect(parseResponse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").head?.framing == .chunked)

        let unframed = try #require(parseResponse("HTTP/1.1 200 OK\r\n\r\n").head)
        #expect(unframed.framing == .untilClose && !unframed.keepAlive)

        for status in [100, 103, 204, 304] {
            #expect(
                parseResponse("HTTP/1.1 \(status) X\r\nContent-Length: 5\r\n\r\n").head?.framing == BodyFraming.none)
        }
        let head = try #require(parseResponse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", isHeadRequest: true).head)
        #expect(head.framing == BodyFraming.none && head.keepAlive)
        #expect(
            parseResponse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", isHeadRequest: true).head?.framing
                == BodyFraming.none)
    }

    @Test("101 Switching Protocols and other 1xx are recognisable")
    func informational() throws {
        let switching = try #require(
            parseResponse("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n").head)
        #expect(switching.isSwitchingProtocols && switching.isInformational && switching.framing == BodyFraming.none)
        let early = try #require(parseResponse("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n").head)
        #expect(early.isInformational && !early.isSwitchingProtocols)
        #expect(parseResponse("HTTP/1.1 200 OK\r\n\r\n").head?.isInformational == false)
    }

    @Test("Persistence")
    func keepAlive() {
        #expect(
            parseResponse("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").head?.keepAlive == false)
        #expect(parseResponse("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").head?.keepAlive == false)
        #expect(
            parseResponse("HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n").head?.keepAlive
                == true)
        #expect(parseResponse("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n").head?.keepAlive == false)
    }

    @Test("An empty reason phrase is fine, but its SP is required")
    func reason() throws {
        let empty = try #require(parseResponse("HTTP/1.1 204 \r\n\r\n").head)
        #expect(empty.reason.isEmpty)
        let spaced = try #require(parseResponse("HTTP/1.1 404 Not \t Found \u{E9}\r\n\r\n").head)
        #expect(spaced.bytes[spaced.reason].count == 14)
    }

    @Test(
        "Every malformed response is a 502",
        arguments: [
            ("HTTP/1.1 200\r\n\r\n", "invalid-status-line"),
            ("HTTP/1.1  200 OK\r\n\r\n", "invalid-status"),
            ("HTTP/1.1 20 OK\r\n\r\n", "invalid-status"),
            ("HTTP/1.1 2000 OK\r\n\r\n", "invalid-status-line"),
            ("HTTP/1.1 600 X\r\n\r\n", "invalid-status"),
            ("HTTP/1.1 099 X\r\n\r\n", "invalid-status"),
            ("HTTP/2 200 OK\r\n\r\n", "invalid-version"),
            ("HTTP/2.0 200 OK\r\n\r\n", "unsupported-version"),
            ("\r\nHTTP/1.1 200 OK\r\n\r\n", "invalid-version"),
            ("HTTP/1.1 200 OK\n\r\n", "bare-lf"),
            ("HTTP/1.1 200 O\rK\r\n\r\n", "bare-cr"),
            ("HTTP/1.1 200 O\0K\r\n\r\n", "invalid-reason"),
            ("HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n", "obs-fold"),
            ("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", "duplicate-content-length"),
            ("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "invalid-content-length"),
            ("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", "te-and-cl"),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "unsupported-transfer-coding"),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", "invalid-transfer-encoding"),
            ("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "transfer-encoding-in-http10"),
            ("HTTP/1.1 304 Not Modified\r\nContent-Length: x\r\n\r\n", "invalid-content-length"),
        ])
    func refused(_ input: String, _ reason: String) {
        #expect(parseResponse(input).error == HTTPParseError(status: 502, reason: reason))
    }

    @Test("Size and count limits apply to responses too, as 502")
    func limits() {
        var limits = HTTPLimits()
        limits.maximumHeadBytes = 64
        limits.maximumHeaderCount = 2
        #expect(
            parseResponse("HTTP/1.1 200 OK\r\nA: \(String(repeating: "x", count: 64))\r\n\r\n", limits: limits).error
                == HTTPParseError(status: 502, reason: "head-too-large"))
        #expect(
            parseResponse("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", limits: limits).error
                == HTTPParseError(status: 502, reason: "too-many-fields"))
        #expect(parseResponse("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n", limits: limits).head != nil)
        #expect(parseResponse("HTTP/1.1 200 OK\r\nA: 1").isIncomplete)
    }
}
