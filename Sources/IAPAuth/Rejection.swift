/// Why an assertion was not accepted. The raw values are stable kebab-case codes: they are what
/// logs, metrics and `iap-proxy verify` print, so never rename one.
public enum RejectionReason: String, Sendable, CaseIterable {
    /// No `x-goog-iap-jwt-assertion` header (DESIGN rule 1).
    case missingAssertion = "missing-assertion"
    /// More than one assertion header: a good token must not shield a bad one.
    case duplicateAssertion = "duplicate-assertion"
    /// Not a compact JWS of three canonical base64url segments within the size cap, or its
    /// header is not a JSON object with a string `kid` (rules 2, 3).
    case malformedToken = "malformed-token"
    /// `alg` is not one of the configured algorithms (ES256 unless configured otherwise).
    case algNotAllowed = "alg-not-allowed"
    /// The header uses `crit` or `b64`, which change how a JWS is processed; never supported.
    case unsupportedHeader = "unsupported-header"
    /// `kid` names no key in the current key set (rule 4).
    case unknownKid = "unknown-kid"
    /// `kid` names a key of another type than `alg` requires (an RSA key for ES256, ...).
    case algKeyMismatch = "alg-key-mismatch"
    /// The signature is not exactly r‖s of the right length, or does not verify (rule 5).
    case badSignature = "bad-signature"
    /// The verified payload is not a JSON object with the claims IAP always sends, of the right types.
    case malformedClaims = "malformed-claims"
    /// `exp` is further in the past than the leeway allows (rule 6).
    case expired = "expired"
    /// `iat` is further in the future than the leeway allows (rule 7).
    case issuedInFuture = "issued-in-future"
    /// `nbf`, when present, is further in the future than the leeway allows.
    case notYetValid = "not-yet-valid"
    /// `exp − iat` exceeds IAP's 600 s plus twice the leeway (rule 8).
    case lifetimeTooLong = "lifetime-too-long"
    /// `aud` is not exactly one of the configured audiences (rule 9).
    case wrongAudience = "wrong-audience"
    /// `iss` is not exactly the configured issuer (rule 10).
    case wrongIssuer = "wrong-issuer"
    /// No usable key set has been loaded yet (rule 13).
    case keysUnavailable = "keys-unavailable"
    /// The identity verified but the policy does not admit it (rule 11).
    case notAllowlisted = "not-allowlisted"
}

/// A refused assertion: a stable `reason` for logs and metrics, and a `detail` for operators
/// (never sent to the client).
public struct Rejection: Error, Sendable, Equatable, CustomStringConvertible {
    public let reason: RejectionReason
    public let detail: String

    public init(_ reason: RejectionReason, _ detail: String = "") {
        self.reason = reason
        self.detail = detail
    }

    public var description: String { detail.isEmpty ? reason.rawValue : "\(reason.rawValue): \(detail)" }
}
