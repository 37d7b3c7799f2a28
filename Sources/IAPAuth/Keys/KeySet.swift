/// An immutable snapshot of the verification keys, by `kid`. Built once per fetched or loaded
/// key set and shared read-only by every thread.
public final class KeySet: Sendable {
    public let keys: [String: VerificationKey]
    /// Keys that were present but refused, with the reason ("kid: why"), for logs and `check-config`.
    public let problems: [String]
    /// Increases with every key set a `KeyStore` publishes; caches of verified tokens compare it
    /// to drop entries when the keys change.
    public let generation: UInt64

    public init(keys: [String: VerificationKey], problems: [String] = [], generation: UInt64 = 0) {
        self.keys = keys
        self.problems = problems
        self.generation = generation
    }

    /// The key named `kid`. There is no default key and no search: an unknown kid is unknown.
    public func key(for kid: String) -> VerificationKey? { keys[kid] }

    public var keyIDs: [String] { keys.keys.sorted() }

    /// The same keys under a new generation number.
    func withGeneration(_ generation: UInt64) -> KeySet {
        KeySet(keys: keys, problems: problems, generation: generation)
    }
}

extension KeySet {
    /// Parses a JWK set (`{"keys": [...]}`, RFC 7517 §5) or Google's older PEM map
    /// (`{"kid": "-----BEGIN PUBLIC KEY-----..."}`).
    ///
    /// A set is refused whole when it is not JSON, names a `kid` twice, or has no usable key.
    /// Single keys that are unusable (wrong curve, point off the curve, `use` other than `sig`,
    /// private material, unsupported type) are left out and listed in `problems`.
    public static func parse(_ bytes: [UInt8]) throws(KeyImportError) -> KeySet {
        let document: JSONObject
        do {
            guard let object = try JSONValue.parse(bytes).objectValue else {
                throw KeyImportError("key set is not a JSON object")
            }
            document = object
        } catch let error as KeyImportError {
            throw error
        } catch {
            throw KeyImportError("key set is not valid JSON: \(error)")
        }
        if let list = document["keys"] {
            guard let entries = list.arrayValue else { throw KeyImportError("\"keys\" is not an array") }
            return try build(entries.enumerated().map { index, entry in parseJWK(entry, index: index) })
        }
        return try build(document.members.map(parsePEMEntry))
    }

    /// One entry of a set: its kid (when readable) and the key or why it was refused.
    private struct Entry {
        let kid: String?
        let label: String
        let key: Result<VerificationKey, KeyImportError>
    }

    private static func build(_ entries: [Entry]) throws(KeyImportError) -> KeySet {
        var keys: [String: VerificationKey] = [:]
        var seen: Set<String> = []
        var problems: [String] = []
        for entry in entries {
            if let kid = entry.kid, !seen.insert(kid).inserted {
                throw KeyImportError("kid \(kid.debugDescription) appears twice: the set is ambiguous")
            }
            switch entry.key {
            case .success(let key): keys[entry.kid!] = key
            case .failure(let error): problems.append("\(entry.label): \(error.reason)")
            }
        }
        guard !keys.isEmpty else {
            let why = problems.isEmpty ? "" : " (" + problems.joined(separator: "; ") + ")"
            throw KeyImportError("key set has no usable key\(why)")
        }
        return KeySet(keys: keys, problems: problems)
    }

    private static func parseJWK(_ value: JSONValue, index: Int) -> Entry {
        guard let jwk = value.objectValue else {
            return Entry(kid: nil, label: "keys[\(index)]", key: .failure(KeyImportError("not a JSON object")))
        }
        let kid = jwk["kid"]?.stringValue
        let label = kid.map { "kid \($0.debugDescription)" } ?? "keys[\(index)]"
        return Entry(kid: kid, label: label, key: Result { () throws(KeyImportError) in try importJWK(jwk, kid: kid) })
    }

    private static func importJWK(_ jwk: JSONObject, kid: String?) throws(KeyImportError) -> VerificationKey {
        guard let kid, !kid.isEmpty else { throw KeyImportError("kid missing or not a string") }
        if let use = jwk["use"], use.stringValue != "sig" { throw KeyImportError("use is not \"sig\"") }
        if let operations = jwk["key_ops"] {
            guard let list = operations.arrayValue, list.contains(.string("verify")) else {
                throw KeyImportError("key_ops does not allow \"verify\"")
            }
        }
        // A public key set that carries private members was published by mistake: do not use it.
        for member in ["d", "p", "q", "dp", "dq", "qi", "k"] where jwk[member] != nil {
            throw KeyImportError("contains private key material (\(member))")
        }
        func coordinate(_ name: String) throws(KeyImportError) -> [UInt8] {
            guard let text = jwk[name]?.stringValue, let bytes = Base64URL.decode(text) else {
                throw KeyImportError("\(name) missing or not canonical base64url")
            }
            return bytes
        }
        let algorithm = jwk["alg"]
        switch jwk["kty"]?.stringValue {
        case "EC":
            guard jwk["crv"]?.stringValue == "P-256" else { throw KeyImportError("EC key is not on P-256") }
            if let algorithm, algorithm.stringValue != "ES256" { throw KeyImportError("alg does not match a P-256 key") }
            return try VerificationKey.ecP256(x: try coordinate("x"), y: try coordinate("y"))
        case "RSA":
            if let algorithm, algorithm.stringValue != "RS256" { throw KeyImportError("alg does not match an RSA key") }
            return try VerificationKey.rsa(modulus: try coordinate("n"), exponent: try coordinate("e"))
        case let other:
            throw KeyImportError("unsupported kty \(other.map { $0.debugDescription } ?? "(missing)")")
        }
    }

    private static func parsePEMEntry(_ member: JSONObject.Member) -> Entry {
        let label = "kid \(member.name.debugDescription)"
        guard let pem = member.value.stringValue else {
            return Entry(kid: member.name, label: label, key: .failure(KeyImportError("not a PEM string")))
        }
        return Entry(
            kid: member.name, label: label,
            key: Result { () throws(KeyImportError) in try VerificationKey.fromPEM(pem) })
    }
}
