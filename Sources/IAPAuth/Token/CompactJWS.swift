#if canImport(Glibc)
import Glibc
#endif

/// A compact JWS split into its three segments, as byte ranges of the token (no copies).
struct CompactJWS {
    let header: Range<Int>
    let payload: Range<Int>
    let signature: Range<Int>

    /// `header.payload`: the ASCII bytes the signature covers.
    var signingInput: Range<Int> { header.lowerBound..<payload.upperBound }

    /// Splits `token` into exactly three non-empty, canonical base64url segments, or nil
    /// (DESIGN rule 2). Anything else — JSON serialization, whitespace, padding, a fourth
    /// segment, an oversized token — is not a compact JWS.
    static func split(_ token: UnsafeRawBufferPointer, maximumBytes: Int) -> CompactJWS? {
        guard token.count <= maximumBytes, let (header, payload, signature) = segments(of: token) else { return nil }
        func isCanonical(_ segment: Range<Int>) -> Bool {
            Base64URL.isCanonical(UnsafeRawBufferPointer(rebasing: token[segment]))
        }
        guard isCanonical(header), isCanonical(payload), isCanonical(signature) else { return nil }
        return CompactJWS(header: header, payload: payload, signature: signature)
    }

    /// The ranges of exactly three non-empty dot-separated segments, or nil.
    static func segments(of token: UnsafeRawBufferPointer) -> (Range<Int>, Range<Int>, Range<Int>)? {
        guard let base = token.baseAddress else { return nil }
        func dot(after start: Int) -> Int? {  // memchr: tokens are long and this runs per request
            guard start < token.count, let found = memchr(base + start, Int32(UInt8(ascii: ".")), token.count - start)
            else { return nil }
            return base.distance(to: UnsafeRawPointer(found))
        }
        guard let first = dot(after: 0), let second = dot(after: first + 1), dot(after: second + 1) == nil,
            first > 0, second > first + 1, second < token.count - 1
        else { return nil }
        return (0..<first, (first + 1)..<second, (second + 1)..<token.count)
    }
}

/// The protected header fields that matter, after JSON decoding (DESIGN rule 3).
struct JOSEHeader {
    let algorithm: JWSAlgorithm
    let keyID: String

    /// Parses the decoded header. `alg` is compared after JSON decoding ("\u0045S256" is ES256)
    /// and must be one of `allowed`; `jku`, `x5u`, `jwk` and `x5c` are ignored, never fetched or
    /// trusted; `crit` and `b64` change JWS processing and are refused whatever their value.
    static func parse(_ bytes: UnsafeRawBufferPointer, allowed: Set<JWSAlgorithm>) -> Result<JOSEHeader, Rejection> {
        let header: JSONObject
        do {
            guard let object = try JSONValue.parse(bytes).objectValue else {
                return .failure(Rejection(.malformedToken, "header is not a JSON object"))
            }
            header = object
        } catch {
            return .failure(Rejection(.malformedToken, "header: \(error)"))
        }
        guard let name = header["alg"]?.stringValue else {
            return .failure(Rejection(.algNotAllowed, "alg missing or not a string"))
        }
        guard let algorithm = JWSAlgorithm(rawValue: name), allowed.contains(algorithm) else {
            return .failure(Rejection(.algNotAllowed, "alg \(name.debugDescription)"))
        }
        if header["crit"] != nil || header["b64"] != nil {
            return .failure(Rejection(.unsupportedHeader, "crit/b64 header parameters are not supported"))
        }
        guard let keyID = header["kid"]?.stringValue, !keyID.isEmpty else {
            return .failure(Rejection(.malformedToken, "kid missing or not a string"))
        }
        return .success(JOSEHeader(algorithm: algorithm, keyID: keyID))
    }
}

/// The claims of a verified payload, typed (DESIGN rules 6–11).
struct IAPClaims {
    let audience: String
    let issuer: String
    let expiresAt: Int64
    let issuedAt: Int64
    let notBefore: Int64?
    let email: String
    let subject: String
    let hostedDomain: String?
    let accessLevels: [String]
    let all: JSONObject

    /// Parses the payload. Every claim IAP always sends must be present with its JSON type:
    /// `exp`/`iat` non-negative integers (no fractions, no strings), `aud`/`iss`/`email`/`sub`
    /// strings; `hd` a string and `google.access_levels` an array of strings when present.
    static func parse(_ bytes: UnsafeRawBufferPointer) -> Result<IAPClaims, Rejection> {
        let claims: JSONObject
        do {
            guard let object = try JSONValue.parse(bytes).objectValue else {
                return .failure(Rejection(.malformedClaims, "payload is not a JSON object"))
            }
            claims = object
        } catch {
            return .failure(Rejection(.malformedClaims, "payload: \(error)"))
        }
        func time(_ name: String, required: Bool) -> Result<Int64?, Rejection> {
            guard let value = claims[name] else {
                return required ? .failure(Rejection(.malformedClaims, "\(name) missing")) : .success(nil)
            }
            guard let seconds = value.integerValue, seconds >= 0 else {
                return .failure(Rejection(.malformedClaims, "\(name) is not a non-negative integer"))
            }
            return .success(seconds)
        }
        func string(_ name: String) -> Result<String, Rejection> {
            guard let value = claims[name]?.stringValue else {
                return .failure(Rejection(.malformedClaims, "\(name) missing or not a string"))
            }
            return .success(value)
        }
        do {
            let expiresAt = try time("exp", required: true).get()!
            let issuedAt = try time("iat", required: true).get()!
            let notBefore = try time("nbf", required: false).get()
            let audience = try string("aud").get()
            let issuer = try string("iss").get()
            let email = try string("email").get()
            let subject = try string("sub").get()
            var hostedDomain: String?
            if let hd = claims["hd"] {
                guard let domain = hd.stringValue else { throw Rejection(.malformedClaims, "hd is not a string") }
                hostedDomain = lowercasedIfNeeded(domain)
            }
            var accessLevels: [String] = []
            if let google = claims["google"] {
                guard let object = google.objectValue else {
                    throw Rejection(.malformedClaims, "google is not an object")
                }
                if let levels = object["access_levels"] {
                    guard let array = levels.arrayValue else {
                        throw Rejection(.malformedClaims, "google.access_levels is not an array")
                    }
                    for level in array {
                        guard let name = level.stringValue else {
                            throw Rejection(.malformedClaims, "google.access_levels holds a non-string")
                        }
                        accessLevels.append(name)
                    }
                }
            }
            guard !email.isEmpty else { throw Rejection(.malformedClaims, "email is empty") }
            // These values become HTTP header values: no control characters, ever.
            func refuseControlCharacters(_ name: String, _ value: String?) throws {
                if let value, containsUTF8(of: value, where: { $0 < 0x20 || $0 == 0x7F }) {
                    throw Rejection(.malformedClaims, "\(name) contains control characters")
                }
            }
            try refuseControlCharacters("email", email)
            try refuseControlCharacters("sub", subject)
            try refuseControlCharacters("hd", hostedDomain)
            return .success(
                IAPClaims(
                    audience: audience, issuer: issuer, expiresAt: expiresAt, issuedAt: issuedAt,
                    notBefore: notBefore, email: lowercasedIfNeeded(email), subject: subject, hostedDomain: hostedDomain,
                    accessLevels: accessLevels, all: claims))
        } catch let rejection as Rejection {
            return .failure(rejection)
        } catch {
            return .failure(Rejection(.malformedClaims, "\(error)"))
        }
    }
}

/// `text.lowercased()`, without a new string when it has no upper-case letters (as IAP sends them).
private func lowercasedIfNeeded(_ text: String) -> String {
    let needed = containsUTF8(of: text) { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") || $0 >= 0x80 }
    return needed ? text.lowercased() : text
}

/// `text.utf8.contains(where:)` over contiguous bytes (claims are native strings): the generic
/// walk of the UTF-8 view costs several times more, on every fresh verification.
private func containsUTF8(of text: String, where predicate: (UInt8) -> Bool) -> Bool {
    text.utf8.withContiguousStorageIfAvailable { $0.contains(where: predicate) } ?? text.utf8.contains(where: predicate)
}
