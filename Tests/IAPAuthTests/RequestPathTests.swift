import Testing

@testable import IAPAuth

@Suite("Request path normalization")
struct RequestPathTests {
    func normalize(_ target: String) -> Result<RequestPath, RequestPath.Failure> { RequestPath.normalize(Array(target.utf8)) }

    @Test("Spellings of /admin all normalize to it (and match it)", arguments: [
        "/admin", "/%61dmin", "/%61%64%6D%69%6E", "//admin", "/./admin", "/public/../admin", "/public/%2e%2e/admin",
        "/public/%2E%2E/admin", "/public/..;x/admin", "/x/y/../../admin", "///admin/.",
    ])
    func spellingsOfAdmin(_ target: String) throws {
        let path = try normalize(target).get()
        #expect(path.matchKey == "/admin" || path.matchKey == "/admin/", "\(target) → \(path.matchKey)")
        #expect(path.path.hasPrefix("/admin"), "\(target) → \(path.path)")
    }

    @Test("Match keys fold case and drop segment parameters; the forwarded path keeps them")
    func matchKey() throws {
        let mixed = try normalize("/ADMIN/Users").get()
        #expect(mixed.matchKey == "/admin/users" && mixed.path == "/ADMIN/Users")
        let parameters = try normalize("/admin;jsessionid=1/x").get()
        #expect(parameters.matchKey == "/admin/x" && parameters.path == "/admin;jsessionid=1/x")
    }

    @Test("Refused: escaping the root, encoded backslash and NUL, invalid escapes, raw backslash", arguments: [
        ("/..", RequestPath.Failure.escapesRoot), ("/%2e%2e/admin", .escapesRoot), ("/a/../../admin", .escapesRoot),
        ("/..;/admin", .escapesRoot), ("/admin%5c", .backslash), ("/admin%5Cx", .backslash), ("/a\\b", .backslash),
        ("/admin%00", .encodedControl), ("/a%0d%0aX", .encodedControl), ("/a%7f", .encodedControl),
        ("/a%", .invalidEscape), ("/a%2", .invalidEscape), ("/a%zz", .invalidEscape), ("admin", .notOriginForm),
        ("", .notOriginForm),
    ])
    func refused(_ target: String, _ failure: RequestPath.Failure) {
        #expect(normalize(target) == .failure(failure), "\(target)")
    }

    @Test("An encoded slash is kept encoded and flagged (routes must allow it)")
    func encodedSlash() throws {
        let path = try normalize("/admin%2fsecret").get()
        #expect(path.hasEncodedSlash && path.path == "/admin%2Fsecret" && path.matchKey == "/admin%2fsecret")
        #expect(try !normalize("/admin/secret").get().hasEncodedSlash)
    }

    @Test("Other escapes are kept with upper-case hex; the query is untouched; trailing slashes stay")
    func preserved() throws {
        let path = try normalize("/a%c3%a9/b%20c/?q=%2e%2e/../x&y=1").get()
        #expect(path.path == "/a%C3%A9/b%20c/")
        #expect(path.query == "q=%2e%2e/../x&y=1")
        #expect(path.target == "/a%C3%A9/b%20c/?q=%2e%2e/../x&y=1")
        #expect(try normalize("/").get().path == "/")
        #expect(try normalize("/a/..").get().path == "/")
        #expect(try normalize("*").get().path == "*")
    }

    @Test("The plain-path shortcut gives what the full rules give, for every path it takes")
    func plainShortcutAgreesWithFullRules() throws {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("aZ9.-_~/".utf8)
        var taken = 0
        for length in 0..<2_000 {
            let tail = (0..<(length % 14)).map { _ in alphabet.randomElement(using: &generator)! }
            let raw = ArraySlice([UInt8(ascii: "/")] + tail)
            guard let plain = RequestPath.plainPath(raw) else { continue }
            taken += 1
            let full = try RequestPath.normalizeInFull(raw, query: nil).get()
            #expect(plain.path == full.path && plain.matchKey == full.matchKey, "\(String(decoding: raw, as: UTF8.self))")
        }
        #expect(taken > 200)
        for special in ["//a", "/a//b", "/.", "/a/./b", "/..", "/a/..", "/a;b", "/%61", "/a\\b", "/a b"] {
            #expect(RequestPath.plainPath(ArraySlice(special.utf8)) == nil, "\(special)")
        }
        #expect(RequestPath.plainPath(ArraySlice("/".utf8))! == ("/", "/"))
        #expect(RequestPath.plainPath(ArraySlice("/Hub/.x/a..b/".utf8))! == ("/Hub/.x/a..b/", "/hub/.x/a..b/"))
    }
}
