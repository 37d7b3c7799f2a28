import HTTP1
import Testing

/// A request that must be refused, and how.
struct Rejection: CustomTestStringConvertible, Sendable {
    let input: String
    let status: Int
    let reason: String

    init(_ input: String, _ status: Int, _ reason: String) {
        self.input = input
        self.status = status
        self.reason = reason
    }

    init(_ input: String, _ reason: String) { self.init(input, 400, reason) }

    var testDescription: String { "\(reason): \([UInt8](input).escaped)" }
}

/// A complete request head with a Host, for cases about one field line.
func request(_ fieldLines: String, version: String = "HTTP/1.1", host: Bool = true) -> String {
    "POST /upload?x=1 \(version)\r\n" + (host ? "Host: example.com\r\n" : "") + fieldLines + "\r\n"
}

@Suite("Request line")
struct RequestLineTests {
    @Test(
        "Refused request lines",
        arguments: [
            Rejection("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", "invalid-target"),
            Rejection(" GET / HTTP/1.1\r\nHost: a\r\n\r\n", "invalid-method"),
            Rejection("G@T / HTTP/1.1\r\nHost: a\r\n\r\n", "invalid-method"),
            Rejection("post / HTTP/1.1\r\nHost: a\r\n\r\n", "lowercase-method"),
            Rejection("Delete / HTTP/1.1\r\nHost: a\r\n\r\n", "lowercase-method"),
            Rejection("connect a:443 HTTP/1.1\r\nHost: a\r\n\r\n", "lowercase-method"),
            Rejection("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", "invalid-method"),
            Rejection("G\"ET / HTTP/1.1\r\nHost: a\r\n\r\n", "invalid-method"),
            Rejection("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", "invalid-version"),
            Rejection("GET / HTTP/1.1x\r\nHost: a\r\n\r\n", "invalid-version"),
            Rejection("GET / http/1.1\r\nHost: a\r\n\r\n", "invalid-version"),
            Rejection("GET / HTTP/1\r\nHost: a\r\n\r\n", "invalid-version"),
            Rejection("GET / ICE/1.0\r\nHost: a\r\n\r\n", "invalid-version"),
            Rejection("GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505, "unsupported-version"),
            Rejection("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, "unsupported-version"),
            Rejection("GET / HTTP/0.9\r\n\r\n", 505, "unsupported-version"),
            Rejection("GET / HTTP/1.1\nHost: a\r\n\r\n", "bare-lf"),
            Rejection("GET / HTTP/1.1\rHost: a\r\n\r\n", "bare-cr"),
            Rejection("GET /\r\n\r\n", "missing-version"),
            Rejection("GET /\nHTTP/1.1\r\n\r\n", "missing-version"),
            Rejection("GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n", "target-fragment"),
            Rejection("GET /\u{7F} HTTP/1.1\r\nHost: a\r\n\r\n", "invalid-target"),
            Rejection("GET /caf\u{E9} HTTP/1.1\r\nHost: a\r\n\r\n", "invalid-target"),
            Rejection("GET /\0 HTTP/1.1\r\nHost: a\r\n\r\n", "invalid-target"),
            Rejection("GET /\t HTTP/1.1\r\nHost: a\r\n\r\n", "invalid-target"),
            Rejection(
                "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 501, "connect-not-supported"),
            Rejection("GET example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n", "invalid-target"),
            Rejection("GET ! HTTP/1.1\r\nHost: a\r\n\r\n", "invalid-target"),
            Rejection("GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", "invalid-target"),
            Rejection("GET * HTTP/1.1\r\nHost: a\r\n\r\n", "asterisk-form-not-options"),
            Rejection("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, "unsupported-version"),
            Rejection("GET http://user@a/ HTTP/1.1\r\nHost: a\r\n\r\n", "invalid-target-authority"),
            Rejection("GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", "invalid-target-authority"),
            Rejection("GET http://a/ HTTP/1.1\r\nHost: b\r\n\r\n", "host-mismatch"),
            Rejection("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", "bare-lf"),
            Rejection("\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", "leading-empty-lines"),
            Rejection("\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", "bare-cr"),
        ])
    func refused(_ rejection: Rejection) {
        #expect(
            parseRequest(rejection.input).error == HTTPParseError(status: rejection.status, reason: rejection.reason))
    }

    @Test("Errors in the request line are reported before the head is complete")
    func earlyRejection() {
        #expect(parseRequest("G@").error?.reason == "invalid-method")
        #expect(parseRequest("GET / HTTP/5.6").error?.status == 505)
        #expect(parseRequest("GET / HTTP/1.1\rL").error?.reason == "bare-cr")
        #expect(parseRequest("CONNECT ").error?.status == 501)
        #expect(parseRequest("GET / HTTP/1.1\r\n Host: foo").error?.reason == "obs-fold")
        #expect(
            parseRequest("GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n").error?.reason
                == "duplicate-content-length")
    }

    @Test("Origin, absolute and asterisk forms")
    func targetForms() throws {
        let origin = try #require(parseRequest("GET /a/b?c=d&e HTTP/1.1\r\nHost: example.com\r\n\r\n").head)
        #expect(origin.targetForm == .origin)
        #expect(origin.methodString == "GET" && origin.targetString == "/a/b?c=d&e" && origin.version == .http11)
        #expect(origin.hostString == "example.com")

        let absolute = try #require(
            parseRequest("GET HTTPS://Example.com:8443?q HTTP/1.1\r\nHost: example.COM:8443\r\n\r\n").head)
        #expect(absolute.targetForm == .absolute)
        #expect(absolute.targetString == "HTTPS://Example.com:8443?q")
        #expect(absolute.hostString == "example.COM:8443")

        let http10 = try #require(parseRequest("GET http://a.example/x HTTP/1.0\r\n\r\n").head)
        #expect(http10.hostString == "a.example")

        let asterisk = try #require(parseRequest("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n").head)
        #expect(asterisk.targetForm == .asterisk)

        // Any token is a method (RFC 9110 §9.1); quotes and pipes are visible ASCII in a target.
        let odd = try #require(parseRequest("M-SEARCH /with_\"q\"|x HTTP/1.1\r\nHost: a\r\n\r\n").head)
        #expect(odd.methodString == "M-SEARCH" && odd.targetString == "/with_\"q\"|x")
        #expect(odd.isHeadMethod == false)
        #expect(parseRequest("HEAD / HTTP/1.1\r\nHost: a\r\n\r\n").head?.isHeadMethod == true)
    }

    @Test("Target limit: exactly at the limit passes, one more byte is 414, even before the line ends")
    func targetLimit() {
        var limits = HTTPLimits()
        limits.maximumTargetBytes = 64
        let atLimit = "/" + String(repeating: "a", count: 63)
        #expect(parseRequest("GET \(atLimit) HTTP/1.1\r\nHost: a\r\n\r\n", limits: limits).head != nil)
        let over = HTTPParseError(status: 414, reason: "target-too-long")
        #expect(parseRequest("GET \(atLimit)a HTTP/1.1\r\nHost: a\r\n\r\n", limits: limits).error == over)
        #expect(parseRequest("GET \(atLimit)a", limits: limits).error == over)
        #expect(parseRequest("GET \(atLimit)", limits: limits).isIncomplete)
    }

    @Test("Up to two empty lines before the request line are skipped and counted in the length")
    func leadingEmptyLines() throws {
        let head = "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
        for prefix in ["", "\r\n", "\r\n\r\n"] {
            let result = parseRequest(prefix + head + "BODY")
            #expect(result.length == prefix.utf8.count + head.utf8.count)
            #expect(result.head?.bytes == [UInt8](head))
        }
        #expect(parseRequest("\r\n").isIncomplete)
        #expect(parseRequest("\r").isIncomplete)
    }
}

@Suite("Field lines")
struct FieldLineTests {
    @Test(
        "Refused field lines",
        arguments: [
            Rejection(request("Foo: a\r\n b\r\n"), "obs-fold"),
            Rejection(request("Foo: a\r\n\tb\r\n"), "obs-fold"),
            Rejection("GET / HTTP/1.1\r\n Host: a\r\n\r\n", "obs-fold"),
            Rejection(request("Foo : a\r\n"), "whitespace-before-colon"),
            Rejection(request("Foo\t: a\r\n"), "whitespace-before-colon"),
            Rejection(request(": a\r\n"), "empty-field-name"),
            Rejection(request("Foo\r\n"), "missing-colon"),
            Rejection(request("F@o: a\r\n"), "invalid-field-name"),
            Rejection(request("Fo\u{85}: a\r\n"), "invalid-field-name"),
            Rejection(request("Fo\0o: a\r\n"), "invalid-field-name"),
            Rejection(request("Foo: a\0b\r\n"), "invalid-field-value"),
            Rejection(request("Foo: a\u{7F}\r\n"), "invalid-field-value"),
            Rejection(request("Foo: a\u{0C}b\r\n"), "invalid-field-value"),
            Rejection(request("Foo: a\u{0B}\r\n"), "invalid-field-value"),
            Rejection(request("Foo: a\rb\r\n"), "bare-cr"),
            Rejection(request("Foo: a\nBar: b\r\n"), "bare-lf"),
            Rejection(request("Foo: a\r\n\n"), "bare-lf"),
            Rejection(request("Foo: a\r\n\rX"), "bare-cr"),
            Rejection("GET / HTTP/1.1\r\nHost: a\n\n", "bare-lf"),
        ])
    func refused(_ rejection: Rejection) {
        #expect(
            parseRequest(rejection.input).error == HTTPParseError(status: rejection.status, reason: rejection.reason))
    }

    @Test("Values are trimmed of OWS; HTAB, SP and obs-text are kept inside")
    func values() throws {
        let head = try #require(parseRequest(request("A: \t a \t b \t\r\nB:\r\nC:c\r\nD: caf\u{E9}\u{FF}\r\n")).head)
        #expect(head.fields.count == 5)
        #expect(head.valueString("a") == "a \t b")
        #expect(head.value("b")?.isEmpty == true)
        #expect(head.valueString("c") == "c")
        #expect(head.valueString("d") == "caf\u{E9}\u{FF}")
        #expect(head.value("missing") == nil)
        #expect(head.values(named: "host").map { [UInt8]($0) } == [[UInt8]("example.com")])
        let field = head.fields[1]
        #expect(head.nameEquals(field, "a") && String(decoding: head.name(of: field), as: UTF8.self) == "A")
    }


    private func parseLongValue(_ value: [UInt8]) -> HeadParseResult<RequestHead> {
        parseRequest([UInt8]("GET / HTTP/1.1\r\nHost: a\r\nX-Long: ") + value + [UInt8]("\r\n\r\n"))
    }

    @Test("Every byte value and every run of whitespace, in every lane of the 8-byte value scan and its tail")
    func valueBytesAtEveryOffset() {
        // Long values are scanned eight bytes at a time: put each byte at each offset of a 27-byte
        // value (three words and a tail).
        let tab: UInt8 = 0x09, space: UInt8 = 0x20
        for byte in UInt8.min...UInt8.max where byte != 0x0D && byte != 0x0A {
            let allowed = byte == tab || (byte >= space && byte != 0x7F)
            let isWhitespace = byte == tab || byte == space
            for offset in 0..<27 {
                var value = [UInt8](repeating: UInt8(ascii: "v"), count: 27)
                value[offset] = byte
                let result = parseLongValue(value)
                if allowed {
                    // Leading and trailing OWS is not part of the value.
                    let expected = isWhitespace && offset == 0 ? Array(value.dropFirst())
                        : isWhitespace && offset == 26 ? Array(value.dropLast()) : value
                    #expect(result.head?.value("x-long").map(Array.init) == expected, "byte \(byte) at \(offset)")
                } else {
                    #expect(
                        result.error == HTTPParseError(status: 400, reason: "invalid-field-value"),
                        "byte \(byte) at \(offset)")
                }
            }
        }
        // Runs of SP or HTAB of every length at every offset: inside the value they stay, at either
        // end they are OWS and go.
        for whitespace in [UInt8(0x20), 0x09] {
            for length in 1...20 {
                for offset in 0...(27 - length) {
                    var value = [UInt8](repeating: UInt8(ascii: "v"), count: 27)
                    value.replaceSubrange(offset..<(offset + length), with: repeatElement(whitespace, count: length))
                    let result = parseLongValue(value)
                    let isOWS = { (byte: UInt8) in byte == 0x20 || byte == 0x09 }
                    let expected = Array(value.drop(while: isOWS).reversed().drop(while: isOWS).reversed())
                    #expect(
                        result.head?.value("x-long").map(Array.init) == expected, "\(length) × \(whitespace) at \(offset)")
                }
            }
        }
    }

    @Test("Field count: exactly the limit passes, one more is 431")
    func fieldCount() {
        var limits = HTTPLimits()
        limits.maximumHeaderCount = 10
        let nine = (1...9).map { "X-\($0): v\r\n" }.joined()  // plus Host
        #expect(parseRequest(request(nine), limits: limits).head?.fields.count == 10)
        #expect(
            parseRequest(request(nine + "X-10: v\r\n"), limits: limits).error
                == HTTPParseError(status: 431, reason: "too-many-fields"))
    }

    @Test("Head size: exactly the limit passes; a longer head, or the limit buffered without an end, is 431")
    func headSize() {
        let exact = request("X: " + String(repeating: "v", count: 900) + "\r\n")
        var limits = HTTPLimits()
        limits.maximumHeadBytes = exact.utf8.count
        #expect(parseRequest(exact, limits: limits).length == exact.utf8.count)
        #expect(parseRequest(exact + "body", limits: limits).length == exact.utf8.count)
        // (Byte arrays: in a String, "\r\n" is one Character.)
        #expect(parseRequest([UInt8](exact).dropLast(1), limits: limits).isIncomplete)
        let tooLarge = HTTPParseError(status: 431, reason: "head-too-large")
        #expect(
            parseRequest(request("X: " + String(repeating: "v", count: 901) + "\r\n"), limits: limits).error == tooLarge
        )
        #expect(parseRequest([UInt8](exact).dropLast(2) + [UInt8]("ab"), limits: limits).error == tooLarge)
    }

    @Test("Every proper prefix of a valid head is incomplete, never an error")
    func prefixes() {
        let text = [UInt8](request("Content-Length: 3\r\nConnection: keep-alive, X-A\r\nExpect: 100-continue\r\n"))
        for end in 0..<text.count {
            #expect(parseRequest(Array(text[..<end])).isIncomplete, "prefix of \(end) bytes")
        }
        #expect(parseRequest(text).length == text.count)
    }
}

@Suite("Host")
struct HostTests {
    @Test(
        "Refused Host fields",
        arguments: [
            Rejection("GET / HTTP/1.1\r\n\r\n", "missing-host"),
            Rejection("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", "duplicate-host"),
            Rejection("GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", "duplicate-host"),
            Rejection("GET / HTTP/1.1\r\nHost:\r\n\r\n", "invalid-host"),
            Rejection("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "invalid-host"),
            Rejection("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", "invalid-host"),
            Rejection("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", "invalid-host"),
            Rejection("GET / HTTP/1.1\r\nHost: a,b\r\n\r\n", "invalid-host"),
            Rejection("GET / HTTP/1.1\r\nHost: a:\r\n\r\n", "invalid-host"),
            Rejection("GET / HTTP/1.1\r\nHost: :80\r\n\r\n", "invalid-host"),
            Rejection("GET / HTTP/1.1\r\nHost: a:65536\r\n\r\n", "invalid-host"),
            Rejection("GET / HTTP/1.1\r\nHost: a:123456\r\n\r\n", "invalid-host"),
            Rejection("GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", "invalid-host"),
            Rejection("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", "invalid-host"),
            Rejection("GET / HTTP/1.1\r\nHost: []\r\n\r\n", "invalid-host"),
            Rejection("GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", "invalid-host"),
            Rejection("GET / HTTP/1.1\r\nHost: a%4\r\n\r\n", "invalid-host"),
            Rejection("GET / HTTP/1.1\r\nHost: caf\u{E9}\r\n\r\n", "invalid-host"),
        ])
    func refused(_ rejection: Rejection) {
        #expect(
            parseRequest(rejection.input).error == HTTPParseError(status: rejection.status, reason: rejection.reason))
    }

    @Test(
        "Accepted authorities",
        arguments: [
            "example.com", "EXAMPLE.com:8080", "a:65535", "a:1", "127.0.0.1", "[::1]", "[::ffff:1.2.3.4]:443",
            "ex%41mple", "0.0.0.0=5000", "a_b-c~d.",
        ])
    func accepted(_ host: String) {
        #expect(parseRequest("GET / HTTP/1.1\r\nHost: \(host)\r\n\r\n").head?.hostString == host)
    }

    @Test("HTTP/1.0 may omit Host")
    func http10WithoutHost() throws {
        let head = try #require(parseRequest("GET / HTTP/1.0\r\n\r\n").head)
        #expect(head.host == nil && head.version == .http10)
    }
}

@Suite("Body framing")
struct FramingTests {
    @Test(
        "Refused framing",
        arguments: [
            Rejection(request("Content-Length: 1\r\nContent-Length: 1\r\n"), "duplicate-content-length"),
            Rejection(request("Content-Length: 1\r\nContent-Length: 2\r\n"), "duplicate-content-length"),
            Rejection(request("Content-Length: 1\r\ncontent-length: 1\r\n"), "duplicate-content-length"),
            Rejection(request("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"), "te-and-cl"),
            Rejection(request("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"), "te-and-cl"),
            Rejection(
                request("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"), "duplicate-transfer-encoding"),
            Rejection(
                request("Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n"), "duplicate-transfer-encoding"),
            Rejection(request("Transfer-Encoding: chunked\r\n", version: "HTTP/1.0"), "transfer-encoding-in-http10"),
            Rejection(request("Transfer-Encoding: gzip, chunked\r\n"), 501, "unsupported-transfer-coding"),
            Rejection(request("Transfer-Encoding: deflate ,\tchunked\r\n"), 501, "unsupported-transfer-coding"),
            Rejection(request("Transfer-Encoding: chunked, identity\r\n"), "invalid-transfer-encoding"),
            Rejection(request("Transfer-Encoding: chunked, chunked\r\n"), "invalid-transfer-encoding"),
            Rejection(request("Transfer-Encoding: gzip\r\n"), "invalid-transfer-encoding"),
            Rejection(request("Transfer-Encoding: identity\r\n"), "invalid-transfer-encoding"),
            Rejection(request("Transfer-Encoding: xchunked\r\n"), "invalid-transfer-encoding"),
            Rejection(request("Transfer-Encoding: chunk\r\n"), "invalid-transfer-encoding"),
            Rejection(request("Transfer-Encoding: \"chunked\"\r\n"), "invalid-transfer-encoding"),
            Rejection(request("Transfer-Encoding: ,chunked\r\n"), "invalid-transfer-encoding"),
            Rejection(request("Transfer-Encoding: gzip,,chunked\r\n"), "invalid-transfer-encoding"),
            Rejection(request("Transfer-Encoding: chunked;q=1\r\n"), "invalid-transfer-encoding"),
            Rejection(request("Transfer-Encoding: \u{A0}chunked\r\n"), "invalid-transfer-encoding"),
            Rejection(request("Transfer-Encoding: ch\u{96}nked\r\n"), "invalid-transfer-encoding"),
            Rejection(request("Transfer-Encoding:\r\n"), "invalid-transfer-encoding"),
            Rejection(request("Transfer-Encoding: chunked\u{0B}\r\n"), "invalid-field-value"),
            Rejection(request("Transfer_Encoding: chunked\r\n"), "lookalike-field-name"),
            Rejection(request("Content_Length: 5\r\n"), "lookalike-field-name"),
            Rejection(request("Content-Length: 5\r\nTransfer_Encoding: chunked\r\n"), "lookalike-field-name"),
        ])
    func refused(_ rejection: Rejection) {
        #expect(
            parseRequest(rejection.input).error == HTTPParseError(status: rejection.status, reason: rejection.reason))
    }

    @Test(
        "Content-Length is 1*DIGIT and at most 2^53",
        arguments: [
            "", "+5", "-5", "5 5", "5,5", "5, 5", "0x10", "5.0", "5e0", "1_0", "1Z", "9007199254740993",
            "1000000000000000000000", "\u{FF}5",
        ])
    func invalidContentLength(_ value: String) {
        #expect(
            parseRequest(request("Content-Length: \(value)\r\n")).error
                == HTTPParseError(status: 400, reason: "invalid-content-length"))
    }

    @Test("Valid Content-Length values")
    func validContentLength() {
        for (value, length) in [("0", 0), ("5", 5), ("003", 3), (" \t42\t ", 42), ("9007199254740992", 1 << 53)] {
            #expect(
                parseRequest(request("Content-Length:\(value)\r\n")).head?.framing == .contentLength(UInt64(length)))
        }
    }

    @Test("Exactly `chunked`, in any case, is chunked framing")
    func chunked() {
        for value in ["chunked", "Chunked", "CHUNKED", "\tchunked "] {
            #expect(parseRequest(request("Transfer-Encoding: \(value)\r\n")).head?.framing == .chunked)
        }
        #expect(parseRequest(request("TRANSFER-ENCODING: chunked\r\n")).head?.framing == .chunked)
        #expect(parseRequest(request("")).head?.framing == BodyFraming.none)
    }

    @Test("The length covers the head only; body bytes stay with the caller")
    func lengthStopsAtBody() throws {
        let head = request("Content-Length: 4\r\n")
        let result = parseRequest(head + "abcdGET / HTTP/1.1\r\n")
        #expect(result.length == head.utf8.count)
        #expect(result.head?.bytes == [UInt8](head))
    }
}

@Suite("Connection, Upgrade and Expect")
struct ConnectionTests {
    @Test("Persistence per RFC 9112 §9.3")
    func keepAlive() {
        #expect(parseRequest(request("")).head?.keepAlive == true)
        #expect(parseRequest(request("Connection: close\r\n")).head?.keepAlive == false)
        #expect(parseRequest(request("Connection: Keep-Alive, CLOSE\r\n")).head?.keepAlive == false)
        #expect(parseRequest(request("Connection: close\t\r\n")).head?.keepAlive == false)
        #expect(parseRequest(request("Connection: a\r\nConnection: close\r\n")).head?.keepAlive == false)
        #expect(parseRequest(request("", version: "HTTP/1.0")).head?.keepAlive == false)
        #expect(parseRequest(request("Connection: keep-alive\r\n", version: "HTTP/1.0")).head?.keepAlive == true)
        #expect(
            parseRequest(request("Connection: keep-alive, close\r\n", version: "HTTP/1.0")).head?.keepAlive == false)
    }

    @Test("Connection options are a token list; unknown ones are exposed for stripping")
    func options() throws {
        let head = try #require(parseRequest(request("Connection: close, ,X-Secret ,upgrade, keep-alive,x_b\r\n")).head)
        #expect(head.connectionOptions.map { String(decoding: head.bytes[$0], as: UTF8.self) } == ["X-Secret", "x_b"])
        #expect(
            parseRequest(request("Connection: a b\r\n")).error
                == HTTPParseError(status: 400, reason: "invalid-connection"))
        #expect(parseRequest(request("Connection: \"close\"\r\n")).error?.reason == "invalid-connection")
        #expect(parseRequest(request("Connection:\r\n")).head?.connectionOptions == [])
    }

    @Test("Upgrade needs both the Connection option and the Upgrade field, in HTTP/1.1")
    func upgrade() {
        #expect(parseRequest(request("Connection: Upgrade\r\nUpgrade: websocket\r\n")).head?.upgrade == true)
        #expect(parseRequest(request("Upgrade: websocket\r\n")).head?.upgrade == false)
        #expect(parseRequest(request("Connection: upgrade\r\n")).head?.upgrade == false)
        #expect(
            parseRequest(request("Connection: upgrade\r\nUpgrade: websocket\r\n", version: "HTTP/1.0")).head?.upgrade
                == false)
    }

    @Test("Expect: only 100-continue; anything else is 417")
    func expect() {
        #expect(parseRequest(request("Expect: 100-continue\r\n")).head?.expectsContinue == true)
        #expect(parseRequest(request("Expect: 100-Continue\r\n")).head?.expectsContinue == true)
        #expect(parseRequest(request("")).head?.expectsContinue == false)
        #expect(parseRequest(request("Expect: 100-continue\r\n", version: "HTTP/1.0")).head?.expectsContinue == false)
        let unsupported = HTTPParseError(status: 417, reason: "unsupported-expectation")
        for value in ["x 100-continue", "100-continue, foo", "", "200-ok"] {
            #expect(parseRequest(request("Expect: \(value)\r\n")).error == unsupported)
        }
    }
}
