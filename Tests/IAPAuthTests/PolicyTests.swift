import Testing

@testable import IAPAuth

@Suite("Policy: routes and access lists")
struct PolicyTests {
    static let headers = IdentityHeaders.presets["oauth2-proxy"]!

    func identity(_ email: String, hd: String? = nil, levels: [String] = []) -> Identity {
        Identity(
            email: email, subject: "accounts.google.com:1", hostedDomain: hd, accessLevels: levels, audience: "a",
            issuedAt: 0, expiresAt: 600, keyID: "k", claims: JSONObject([]))
    }

    func list(_ text: String) throws -> AccessList {
        let (parsed, problems) = Allowlist.parse(text)
        #expect(problems.isEmpty, "\(problems)")
        return try AccessList(allow: parsed.allow, deny: parsed.deny, groups: parsed.groups)
    }

    func path(_ target: String) -> RequestPath { try! RequestPath.normalize(Array(target.utf8)).get() }

    @Test("Domains match hd, never the email's suffix; consumer accounts need an explicit entry")
    func domainsAndConsumers() throws {
        let access = try list("example.com\ncarol@gmail.com\n*@proj.iam.gserviceaccount.com\n")
        #expect(access.decide(identity("alice@example.com", hd: "example.com")) == .allow("domain-ok", detail: ""))
        // An email at example.com without hd (a consumer account using that address) is not the domain.
        #expect(!access.decide(identity("mallory@example.com")).isAllowed)
        #expect(access.decide(identity("carol@gmail.com")) == .allow("email-ok", detail: ""))
        #expect(!access.decide(identity("dave@gmail.com")).isAllowed)
        #expect(access.decide(identity("ci@proj.iam.gserviceaccount.com")) == .allow("email-domain-ok", detail: ""))
        #expect(!access.decide(identity("ci@other.iam.gserviceaccount.com")).isAllowed)
        // hd of another domain with an example.com address: hd decides.
        #expect(!access.decide(identity("x@example.com", hd: "evil.example")).isAllowed)
    }

    @Test("Deny entries win over every allow entry")
    func denyWins() throws {
        let access = try list("example.com\n!bob@example.com\ngroup:admins\n[group admins]\nbob@example.com\n")
        #expect(access.decide(identity("bob@example.com", hd: "example.com")).reason == "denied-by-email")
        #expect(access.decide(identity("alice@example.com", hd: "example.com")).isAllowed)
        let denyDomain = try list("alice@partner.example\n!partner.example\n")
        #expect(!denyDomain.decide(identity("alice@partner.example", hd: "partner.example")).isAllowed)
    }

    @Test("Groups: members admitted with the group named; unknown groups and nesting are errors")
    func groups() throws {
        let access = try list("group:ml-admins\n[group ml-admins]\nalice@example.com\n@ops.example\n")
        #expect(access.decide(identity("alice@example.com", hd: "example.com")) == .allow("group-ok", detail: "ml-admins"))
        #expect(access.decide(identity("op@ops.example", hd: "ops.example")).isAllowed)
        #expect(!access.decide(identity("bob@example.com", hd: "example.com")).isAllowed)
        #expect(throws: ConfigurationError.self) { try AccessList(allow: [.group("nope")], deny: [], groups: [:]) }
        #expect(throws: ConfigurationError.self) {
            try AccessList(allow: [.group("a")], deny: [], groups: ["a": [.group("b")], "b": []])
        }
    }

    @Test("Allowlist files: every bad line reported with its number")
    func fileProblems() {
        let (_, problems) = Allowlist.parse("example.com\nnot an entry\n!\n[group]\nalice@@x\n# fine\n[group a]\n!x@y.z\n")
        #expect(problems.map(\.line) == [2, 3, 4, 5, 8])
    }

    @Test("Longest match wins; host beats no host; exact path beats prefix; no match is no route")
    func precedence() throws {
        let open = try list("example.com")
        let admins = try list("admin@example.com")
        let policy = Policy(routes: [
            Route(name: "all", pathPrefix: "/", auth: .verified(open), identityHeaders: Self.headers),
            Route(name: "admin", pathPrefix: "/admin", auth: .verified(admins), identityHeaders: Self.headers),
            Route(name: "admin-host", host: "admin.example.com", pathPrefix: "/", auth: .verified(admins), identityHeaders: Self.headers),
            Route(name: "health", exactPath: "/admin/health", auth: .none, identityHeaders: Self.headers),
            Route(name: "delete", pathPrefix: "/api", methods: ["DELETE"], auth: .verified(admins), identityHeaders: Self.headers),
        ])
        func route(_ target: String, host: String = "app.example.com", method: String = "GET") -> String? {
            policy.route(host: host, path: path(target), method: method)?.name
        }
        #expect(route("/x") == "all")
        #expect(route("/admin") == "admin")
        #expect(route("/admin/users") == "admin")
        #expect(route("/administrator") == "all")  // prefixes match whole segments
        #expect(route("/admin/health") == "health")
        #expect(route("/x", host: "Admin.Example.com:443") == "admin-host")
        #expect(route("/api/runs", method: "DELETE") == "delete")
        #expect(route("/api/runs", method: "GET") == "all")
        let narrow = Policy(routes: [Route(name: "only", pathPrefix: "/app", auth: .verified(open), identityHeaders: Self.headers)])
        #expect(narrow.route(host: nil, path: path("/other"), method: "GET") == nil)
    }

    @Test("Spellings apps treat alike meet the same rule: a final dot on the host, a trailing slash on an exact path, HEAD under GET")
    func equivalentSpellings() throws {
        let open = try list("example.com")
        let admins = try list("admin@example.com")
        let policy = Policy(routes: [
            Route(name: "all", pathPrefix: "/", auth: .verified(open), identityHeaders: Self.headers),
            Route(name: "secure-host", host: "secure.example.com", pathPrefix: "/", auth: .verified(admins), identityHeaders: Self.headers),
            Route(name: "settings", exactPath: "/settings", auth: .verified(admins), identityHeaders: Self.headers),
            Route(name: "export", pathPrefix: "/export", methods: ["GET"], auth: .verified(admins), identityHeaders: Self.headers),
        ])
        func route(_ target: String, host: String = "app.example.com", method: String = "GET") -> String? {
            policy.route(host: host, path: path(target), method: method)?.name
        }
        #expect(route("/x", host: "secure.example.com.") == "secure-host")
        #expect(route("/x", host: "Secure.Example.COM.:8443") == "secure-host")
        #expect(route("/settings/") == "settings")
        #expect(route("/settings//") == "settings")
        #expect(route("/settings/x") == "all")
        #expect(route("/export/all", method: "HEAD") == "export")
        #expect(route("/export/all", method: "POST") == "all")
    }

    @Test("Every route's header names are known to the policy, to be stripped on every route")
    func headerNamesAcrossRoutes() throws {
        let tenant = IdentityHeaders([.init(name: "X-Tenant", template: "{hd}")])
        let policy = Policy(routes: [
            Route(name: "all", pathPrefix: "/", auth: .verified(try list("example.com")), identityHeaders: Self.headers),
            Route(name: "tenant", pathPrefix: "/t", auth: .verified(try list("example.com")), identityHeaders: tenant),
        ])
        #expect(policy.identityHeaderNames == ["x-auth-request-email", "x-forwarded-email", "x-forwarded-user", "x-tenant"])
    }

    @Test("A route protecting /admin cannot be side-stepped by another spelling", arguments: [
        "/admin", "/%61dmin", "//admin", "/public/../admin", "/public/%2e%2e/admin", "/admin;x", "/ADMIN", "/Admin/",
        "/public/..;/admin", "/./admin/./", "/admin/", "/admin?x=1",
    ])
    func noBypass(_ target: String) throws {
        let policy = Policy(routes: [
            Route(name: "public", pathPrefix: "/", auth: .none, identityHeaders: Self.headers),
            Route(name: "admin", pathPrefix: "/admin", auth: .verified(try list("admin@example.com")), identityHeaders: Self.headers),
        ])
        #expect(policy.route(host: nil, path: path(target), method: "GET")?.name == "admin", "\(target)")
    }

    @Test("Required access levels: all must be present")
    func accessLevels() throws {
        let route = Route(
            name: "r", pathPrefix: "/", auth: .verified(try list("example.com")),
            requiredAccessLevels: ["accessPolicies/1/accessLevels/corp"], identityHeaders: Self.headers)
        let inside = identity("a@example.com", hd: "example.com", levels: ["accessPolicies/1/accessLevels/corp"])
        #expect(Policy.decide(route, inside).isAllowed)
        let outside = identity("a@example.com", hd: "example.com", levels: ["accessPolicies/1/accessLevels/other"])
        #expect(Policy.decide(route, outside) == .deny("access-level-missing", detail: "accessPolicies/1/accessLevels/corp"))
    }

    @Test("Header templates: literal text and placeholders; names and placeholders checked")
    func templates() {
        let headers = IdentityHeaders([.init(name: "kubeflow-userid", template: "accounts.google.com:{email}"),
                                       .init(name: "X-User", template: "{user}@{hd}")])
        let rendered = headers.render(identity("Alice.B@example.com".lowercased(), hd: "example.com"))
        #expect(rendered.map(\.value) == ["accounts.google.com:alice.b@example.com", "alice.b@example.com"])
        #expect(IdentityHeaders.problem(name: "X User", template: "{email}") != nil)
        #expect(IdentityHeaders.problem(name: "X-User", template: "{mail}") != nil)
        #expect(IdentityHeaders.problem(name: "X-User", template: "a\r\nb") != nil)
        #expect(IdentityHeaders.problem(name: "X-User", template: "{email") != nil)
        #expect(IdentityHeaders.problem(name: "X-User", template: "user={user}") == nil)
    }
}
