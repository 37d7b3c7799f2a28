@testable import IAPAuth

/// Mints test tokens with generated keys (never committed keys).
enum TokenFactory {
    static let audience = "/projects/1/apps/a"

    /// IAP-shaped claims valid at `now`.
    static func claims(now: Int64, email: String = "alice@example.com", hd: String? = "example.com") -> [String: JSONValue] {
        var claims: [String: JSONValue] = [
            "aud": .string(audience), "iss": .string(VerifierConfig.iapIssuer), "iat": .number(String(now)),
            "exp": .number(String(now + 600)), "email": .string(email), "sub": .string("accounts.google.com:1"),
        ]
        if let hd { claims["hd"] = .string(hd) }
        return claims
    }

    static func object(_ members: [String: JSONValue]) -> JSONValue {
        .object(JSONObject(members.sorted { $0.key < $1.key }.map { .init(name: $0.key, value: $0.value) }))
    }

    static func token(
        header: [String: JSONValue]? = nil, claims: [String: JSONValue], key: SigningKey, kid: String
    ) throws -> String {
        let header = header ?? ["alg": .string("ES256"), "typ": .string("JWT"), "kid": .string(kid)]
        return try key.compactJWS(header: object(header), claims: object(claims))
    }

    /// A key set holding the public halves of `keys`, by kid.
    static func keySet(_ keys: [String: SigningKey]) throws -> KeySet {
        let jwks = JSONValue.object(
            JSONObject([.init(name: "keys", value: .array(keys.map { $0.value.publicJWK(kid: $0.key) }))]))
        return try KeySet.parse(Array(jwks.serialized().utf8))
    }
}
