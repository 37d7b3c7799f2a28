import HTTP1
import Testing

func slice(_ text: String) -> ArraySlice<UInt8> { ArraySlice(text.utf8) }

@Suite("Header names, hop-by-hop and identity stripping")
struct HeaderUtilityTests {
    @Test("Case-insensitive and identity-normalized comparisons")
    func names() {
        #expect(HeaderName.equals(slice("Content-LENGTH"), "content-length"))
        #expect(!HeaderName.equals(slice("Content_Length"), "content-length"))
        #expect(!HeaderName.equals(slice("Content-Lengt"), "content-length"))
        #expect(HeaderName.identityEquals(slice("X_Forwarded_Email"), "x-forwarded-email"))
        #expect(HeaderName.identityEquals(slice("X-FORWARDED_EMAIL"), "X_forwarded-Email"))
        #expect(!HeaderName.identityEquals(slice("X-Forwarded-Emails"), "x-forwarded-email"))
        #expect(HeaderName.normalized("X_Auth-Request_User".utf8) == [UInt8]("x-auth-request-user"))
        #expect(HeaderName.isValid("X-Ok".utf8) && !HeaderName.isValid("X Ok".utf8) && !HeaderName.isValid("".utf8))
    }

    @Test("Field names are exactly 1*tchar (RFC 9110 §5.6.2), checked byte by byte")
    func tokenBytes() {
        let tchar = Set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)
        for byte in UInt8.min...UInt8.max {
            #expect(HeaderName.isValid([byte]) == tchar.contains(byte), "byte \(byte)")
        }
    }

    @Test("Hop-by-hop: the fixed list, lookalikes, and names listed in Connection")
    func hopByHop() throws {
        let head = try #require(
            parseRequest(
                request(
                    "Connection: keep-alive, X-Secret, x_other\r\nKeep_Alive: 1\r\nTE: trailers\r\nTrailer: A\r\n"
                        + "Proxy-Connection: x\r\nUpgrade: h2c\r\nX-Secret: s\r\nX-Other: o\r\nX-Kept: k\r\n")
            ).head)
        let stripped = head.fields.filter { HopByHop.isHopByHop($0, in: head) }.map {
            String(decoding: head.name(of: $0), as: UTF8.self)
        }
        #expect(
            stripped == [
                "Connection", "Keep_Alive", "TE", "Trailer", "Proxy-Connection", "Upgrade", "X-Secret", "X-Other",
            ])
        #expect(HopByHop.isAlwaysHopByHop(slice("Transfer-Encoding")))
        #expect(!HopByHop.isAlwaysHopByHop(slice("Content-Length")))
    }

    @Test("Identity headers: exact names, prefixes and extras, with `_` and case variants")
    func identity() {
        let matcher = IdentityHeaderMatcher(extraNames: ["X-Custom-User"], extraPrefixes: ["x-team-"])
        for name in [
            "X-Forwarded-User", "x-forwarded-email", "X_Forwarded_Email", "X-FORWARDED_EMAIL", "X-Forwarded-Groups",
            "x-forwarded-preferred-username", "Remote-User", "remote_user", "kubeflow-userid", "KUBEFLOW_USERID",
            "X-Auth-Request-Email", "x_auth_request_user", "X-WEBAUTH-USER", "x-webauth-email",
            "X-Goog-Authenticated-User-Email", "x_goog_authenticated_user_id", "X-Custom-User", "x_custom_user",
            "X-Team-Role",
        ] {
            #expect(matcher.matches(slice(name)), "\(name)")
        }
        for name in [
            "Authorization", "Proxy-Authorization", "x-goog-iap-jwt-assertion", "X-Forwarded-For", "X-Forwarded-Proto",
            "X-Forwarded-Host", "x-auth-request", "X-Forwarded-Users", "Remote-Users", "X-Goog-Authenticated-User",
            "Cookie", "X-Team",
        ] {
            #expect(!matcher.matches(slice(name)), "\(name)")
        }
        #expect(!IdentityHeaderMatcher().matches(slice("X-Custom-User")))
    }
}

@Suite("Head writers")
struct HeadWriterTests {
    @Test("A request head is rewritten as HTTP/1.1 with chosen fields, canonical framing and extras")
    func request() throws {
        let head = try #require(
            parseRequest(
                "POST http://a.example/p?q HTTP/1.0\r\nHost: a.example\r\nContent-Length: 003\r\n"
                    + "X_Forwarded_Email: evil\r\nAccept:  */* \r\n\r\n"
            ).head)
        let identity = IdentityHeaderMatcher()
        var output: [UInt8] = [UInt8]("prefix|")
        let written = RequestHeadWriter.append(
            head, framing: head.framing, extraFields: [ExtraField("X-Forwarded-Email", "me@example.com")], to: &output
        ) { !identity.matches(head.name(of: head.fields[$0])) }
        #expect(written)
        #expect(
            output
                == [UInt8](
                    "prefix|POST http://a.example/p?q HTTP/1.1\r\nHost: a.example\r\nAccept: */*\r\n"
                        + "Content-Length: 3\r\nX-Forwarded-Email: me@example.com\r\n\r\n"))
        let reparsed = try #require(parseRequest(Array(output.dropFirst(7))).head)
        #expect(reparsed.valueString("x-forwarded-email") == "me@example.com" && reparsed.fields.count == 4)
    }

    @Test("Byte appending: literals, strings (small and large, non-ASCII), decimal and hex numbers")
    func byteAppending() {
        var bytes: [UInt8] = []
        bytes.append(literal: "a: ")
        bytes.append(utf8: "é")
        bytes.append(utf8: String(repeating: "x", count: 40))
        bytes.append(literal: "|")
        for number: Int64 in [0, 7, 10, -1, 1_234_567_890, .max, .min] {
            bytes.append(decimal: number)
            bytes.append(literal: ",")
        }
        bytes.append(decimal: UInt64.max)
        bytes.append(literal: "|")
        for number: UInt64 in [0, 9, 10, 255, 0xdead_beef, .max] {
            bytes.append(hex: number)
            bytes.append(literal: ",")
        }
        let expected = "a: é" + String(repeating: "x", count: 40) + "|0,7,10,-1,1234567890,9223372036854775807,"
            + "-9223372036854775808,18446744073709551615|0,9,a,ff,deadbeef,ffffffffffffffff,"
        #expect(bytes == [UInt8](expected))
    }

    @Test("Every field line is written as `name: value CRLF`, however it was spaced")
    func fieldLineSpelling() throws {
        let head = try #require(
            parseRequest(
                "GET / HTTP/1.1\r\nHost: a\r\nA:\tb\r\nB:c\r\nC: d \t\r\nD: \r\nE:\r\nF:  f\r\nG: g g\r\nH: h\r\n\r\n"
            ).head)
        var output: [UInt8] = []
        #expect(RequestHeadWriter.append(head, framing: .none, to: &output) { _ in true })
        #expect(
            output
                == [UInt8](
                    "GET / HTTP/1.1\r\nHost: a\r\nA: b\r\nB: c\r\nC: d\r\nD: \r\nE: \r\nF: f\r\nG: g g\r\n"
                        + "H: h\r\n\r\n"))
    }

    @Test("The writer owns framing: received framing fields are dropped, the given framing is written")
    func framing() throws {
        let head = try #require(parseRequest("PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n").head)
        var output: [UInt8] = []
        #expect(RequestHeadWriter.append(head, framing: .contentLength(12), to: &output) { _ in true })
        #expect(output == [UInt8]("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n"))
        output = []
        #expect(RequestHeadWriter.append(head, framing: .none, to: &output) { _ in true })
        #expect(output == [UInt8]("PUT / HTTP/1.1\r\nHost: a\r\n\r\n"))
    }

    @Test(
        "Extra fields that could inject lines or framing are refused and nothing is written",
        arguments: [
            ("X-A", "a\r\nX-Injected: 1"), ("X-A", "a\nb"), ("X-A", "a\0"), ("X A", "v"), ("", "v"), ("X:A", "v"),
            ("Content-Length", "0"), ("transfer_encoding", "chunked"),
        ])
    func injection(_ name: String, _ value: String) throws {
        let head = try #require(parseRequest("GET / HTTP/1.1\r\nHost: a\r\n\r\n").head)
        var output: [UInt8] = []
        #expect(
            !RequestHeadWriter.append(head, framing: .none, extraFields: [ExtraField(name, value)], to: &output) {
                _ in true
            })
        #expect(output.isEmpty)
    }

    @Test("A response head is rewritten as HTTP/1.1 with its status and reason")
    func response() throws {
        let head = try #require(
            parseResponse(
                "HTTP/1.0 404 Not Found\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\n"
            ).head)
        var output: [UInt8] = []
        #expect(
            ResponseHeadWriter.append(
                head, framing: head.framing, extraFields: [ExtraField("X-Request-Id", "r1")], to: &output
            ) { !HopByHop.isHopByHop(head.fields[$0], in: head) })
        #expect(output == [UInt8]("HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\nX-Request-Id: r1\r\n\r\n"))
        let early = try #require(parseResponse("HTTP/1.1 100 \r\n\r\n").head)
        output = []
        #expect(ResponseHeadWriter.append(early, framing: .none, to: &output) { _ in true })
        #expect(output == [UInt8]("HTTP/1.1 100 \r\n\r\n"))
        #expect(parseResponse(String(decoding: output, as: UTF8.self)).head?.status == 100)
    }
}
