/// The headers an app receives with the verified identity: name plus a value template with
/// `{email}`, `{user}` (the email's local part), `{sub}` and `{hd}`.
public struct IdentityHeaders: Sendable, Equatable {
    public struct Header: Sendable, Equatable {
        public let name: String
        public let template: String

        public init(name: String, template: String) {
            self.name = name
            self.template = template
        }
    }

    public let headers: [Header]
    private let compiled: [CompiledHeader]

    public init(_ headers: [Header]) {
        self.headers = headers
        compiled = headers.map(CompiledHeader.init)
    }

    public static func == (lhs: IdentityHeaders, rhs: IdentityHeaders) -> Bool { lhs.headers == rhs.headers }

    /// The built-in presets, by name. Values are the full email wherever an app keys accounts by
    /// the header: the local part alone would make alice@a.example and alice@b.example one user.
    public static let presets: [String: IdentityHeaders] = [
        // What oauth2-proxy's pass-user-headers / set-xauthrequest modes send.
        "oauth2-proxy": IdentityHeaders([
            Header(name: "X-Forwarded-Email", template: "{email}"), Header(name: "X-Forwarded-User", template: "{email}"),
            Header(name: "X-Auth-Request-Email", template: "{email}"),
        ]),
        // JupyterHub header authenticators (jhub-remote-user-authenticator and the like).
        "jupyterhub": IdentityHeaders([Header(name: "Remote-User", template: "{email}")]),
        // Grafana [auth.proxy]: header_name = X-WEBAUTH-USER, headers = Email:X-WEBAUTH-EMAIL Name:X-WEBAUTH-NAME.
        "grafana": IdentityHeaders([
            Header(name: "X-WEBAUTH-USER", template: "{email}"), Header(name: "X-WEBAUTH-EMAIL", template: "{email}"),
            Header(name: "X-WEBAUTH-NAME", template: "{user}"),
        ]),
        // Kubeflow's central dashboard and profiles (USERID_HEADER kubeflow-userid, no prefix).
        "kubeflow": IdentityHeaders([Header(name: "kubeflow-userid", template: "{email}")]),
    ]

    public static let defaultPreset = "oauth2-proxy"

    /// Why a custom header cannot be used, or nil: the name must be a token, and the template
    /// printable text whose `{...}` are all known placeholders.
    public static func problem(name: String, template: String) -> String? {
        let tokenExtras = Array("!#$%&'*+-.^_`|~".utf8)
        guard !name.isEmpty, name.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || tokenExtras.contains($0) }) else {
            return "not a valid header name"
        }
        guard template.utf8.allSatisfy({ $0 >= 0x20 && $0 != 0x7F }) else { return "the template has control characters" }
        var rest = Substring(template)
        while let open = rest.firstIndex(of: "{") {
            guard let close = rest[open...].firstIndex(of: "}") else { return "unclosed { in the template" }
            let placeholder = rest[open...close]
            guard ["{email}", "{user}", "{sub}", "{hd}"].contains(placeholder) else {
                return "unknown placeholder \(placeholder) (use {email}, {user}, {sub} or {hd})"
            }
            rest = rest[rest.index(after: close)...]
        }
        return nil
    }

    /// The header values for `identity`. Templates are split into parts once (`compiled`), so
    /// rendering is concatenation: no searching per request.
    public func render(_ identity: Identity) -> [(name: String, value: String)] {
        compiled.map { header in (header.name, header.parts.map { $0.value(for: identity) }.joined()) }
    }

    private struct CompiledHeader: Sendable {
        enum Part: Sendable {
            case literal(String)
            case email, user, subject, domain

            func value(for identity: Identity) -> String {
                switch self {
                case .literal(let text): return text
                case .email: return identity.email
                case .user: return identity.email.split(separator: "@", maxSplits: 1).first.map(String.init) ?? identity.email
                case .subject: return identity.subject
                case .domain: return identity.hostedDomain ?? ""
                }
            }
        }

        let name: String
        let parts: [Part]

        init(_ header: Header) {
            name = header.name
            var parts: [Part] = []
            var rest = Substring(header.template)
            let placeholders: [(String, Part)] = [("{email}", .email), ("{user}", .user), ("{sub}", .subject), ("{hd}", .domain)]
            while !rest.isEmpty {
                if let (text, part) = placeholders.first(where: { rest.hasPrefix($0.0) }) {
                    parts.append(part)
                    rest = rest.dropFirst(text.count)
                } else {
                    let literalEnd = rest.dropFirst().firstIndex(of: "{") ?? rest.endIndex
                    parts.append(.literal(String(rest[..<literalEnd])))
                    rest = rest[literalEnd...]
                }
            }
            self.parts = parts
        }
    }
}
