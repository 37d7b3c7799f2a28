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

    public init(_ headers: [Header]) { self.headers = headers }

    /// The built-in presets, by name.
    public static let presets: [String: IdentityHeaders] = [
        "oauth2-proxy": IdentityHeaders([
            Header(name: "X-Forwarded-Email", template: "{email}"), Header(name: "X-Forwarded-User", template: "{user}"),
        ]),
        "jupyterhub": IdentityHeaders([Header(name: "Remote-User", template: "{email}")]),
        "grafana": IdentityHeaders([
            Header(name: "X-WEBAUTH-USER", template: "{email}"), Header(name: "X-WEBAUTH-EMAIL", template: "{email}"),
        ]),
        "kubeflow": IdentityHeaders([Header(name: "kubeflow-userid", template: "{email}")]),
    ]

    public static let defaultPreset = "oauth2-proxy"

    /// The header values for `identity`.
    public func render(_ identity: Identity) -> [(name: String, value: String)] {
        headers.map { header in
            var value = header.template
            let user = identity.email.split(separator: "@", maxSplits: 1).first.map(String.init) ?? identity.email
            for (placeholder, replacement) in [
                ("{email}", identity.email), ("{user}", user), ("{sub}", identity.subject), ("{hd}", identity.hostedDomain ?? ""),
            ] {
                value = value.replacing(placeholder, with: replacement)
            }
            return (header.name, value)
        }
    }
}
