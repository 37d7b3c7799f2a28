/// The verified identity of an IAP assertion (DESIGN rule 11).
public struct Identity: Sendable {
    /// Lowercased, as IAP's addresses are case-insensitive.
    public let email: String
    public let subject: String
    /// The Google Workspace domain (`hd`), lowercased; nil for consumer accounts.
    public let hostedDomain: String?
    /// `google.access_levels`, when the token carries them.
    public let accessLevels: [String]
    public let audience: String
    public let issuedAt: Int64
    public let expiresAt: Int64
    public let keyID: String
    /// Every claim of the verified payload, for `verify` output and `whoami`.
    public let claims: JSONObject
}

/// Decides whether a token is a genuine, current assertion for this app: the one entry point
/// of DESIGN's rules 2–10, in their order.
///
/// One `Verifier` per thread: it owns a reusable OpenSSL digest context and a decoding buffer.
/// The key set is passed per call (a snapshot), and time is always a parameter, so tests never sleep.
public final class Verifier {
    public let config: VerifierConfig
    private let signatures = SignatureVerifier()
    /// The decoded segments of the token in hand, side by side: decoding shrinks base64url by a
    /// quarter, so a buffer of the token size cap holds any accepted token's, and no verification
    /// allocates for them.
    private let decoded: UnsafeMutableRawBufferPointer

    public init(config: VerifierConfig) {
        self.config = config
        decoded = .allocate(byteCount: config.maximumTokenBytes, alignment: 1)
    }

    deinit { decoded.deallocate() }

    /// Verifies `token` against `keys` at `now` (seconds since the epoch).
    public func verify(_ token: UnsafeRawBufferPointer, keys: KeySet?, now: Int64) -> Result<Identity, Rejection> {
        let verified: VerifiedJWS
        switch verifySignature(token, keys: keys) {
        case .success(let jws): verified = jws
        case .failure(let rejection): return .failure(rejection)
        }
        let claims: IAPClaims
        switch IAPClaims.parse(verified.payload) {
        case .success(let parsed): claims = parsed
        case .failure(let rejection): return .failure(rejection)
        }
        if let rejection = check(claims, now: now) { return .failure(rejection) }
        return .success(
            Identity(
                email: claims.email, subject: claims.subject, hostedDomain: claims.hostedDomain,
                accessLevels: claims.accessLevels, audience: claims.audience, issuedAt: claims.issuedAt,
                expiresAt: claims.expiresAt, keyID: verified.keyID, claims: claims.all))
    }

    public func verify(_ token: String, keys: KeySet?, now: Int64) -> Result<Identity, Rejection> {
        var bytes = Array(token.utf8)
        return bytes.withUnsafeMutableBytes { verify(UnsafeRawBufferPointer($0), keys: keys, now: now) }
    }

    /// A JWS whose signature verified; its payload is not yet checked.
    struct VerifiedJWS {
        let algorithm: JWSAlgorithm
        let keyID: String
        /// The decoded payload, in this verifier's buffer: valid until its next verification.
        let payload: UnsafeRawBufferPointer
    }

    /// Rules 2–5: structure, header, key and signature. The payload is decoded only after the
    /// signature verifies, so unauthenticated claims are never parsed.
    func verifySignature(_ token: UnsafeRawBufferPointer, keys: KeySet?) -> Result<VerifiedJWS, Rejection> {
        guard let keys else { return .failure(Rejection(.keysUnavailable, "no key set loaded yet")) }
        guard let jws = CompactJWS.split(token, maximumBytes: config.maximumTokenBytes) else {
            return .failure(
                Rejection(.malformedToken, "not a compact JWS of canonical base64url within \(config.maximumTokenBytes) bytes"))
        }
        var used = 0
        func segment(_ range: Range<Int>) -> UnsafeRawBufferPointer {
            // Canonical base64url was checked by split, so decoding cannot fail.
            let count = Base64URL.decode(
                UnsafeRawBufferPointer(rebasing: token[range]),
                into: UnsafeMutableRawBufferPointer(rebasing: decoded[used...]))!
            defer { used += count }
            return UnsafeRawBufferPointer(rebasing: decoded[used..<(used + count)])
        }
        let header: JOSEHeader
        switch JOSEHeader.parse(segment(jws.header), allowed: config.algorithms) {
        case .success(let parsed): header = parsed
        case .failure(let rejection): return .failure(rejection)
        }
        guard let key = keys.key(for: header.keyID) else {
            return .failure(Rejection(.unknownKid, "kid \(header.keyID.debugDescription)"))
        }
        guard header.algorithm.matches(key.kind) else {
            return .failure(Rejection(.algKeyMismatch, "\(header.algorithm.rawValue) with kid \(header.keyID.debugDescription)"))
        }
        let signature = segment(jws.signature)
        let message = UnsafeRawBufferPointer(rebasing: token[jws.signingInput])
        guard signatures.verify(header.algorithm, signature: signature, message: message, key: key) else {
            return .failure(Rejection(.badSignature, "\(header.algorithm.rawValue) signature of \(signature.count) bytes"))
        }
        return .success(VerifiedJWS(algorithm: header.algorithm, keyID: header.keyID, payload: segment(jws.payload)))
    }

    /// Rules 6–10 on verified claims. "Exactly at the leeway passes, one second more fails."
    private func check(_ claims: IAPClaims, now: Int64) -> Rejection? {
        let leeway = config.leeway
        // Claims are non-negative (checked when parsed) and now is sane, so nothing overflows.
        if claims.expiresAt < now - leeway {
            return Rejection(.expired, "exp \(claims.expiresAt) is \(now - claims.expiresAt) s before now")
        }
        if claims.issuedAt > now + leeway {
            return Rejection(.issuedInFuture, "iat \(claims.issuedAt) is \(claims.issuedAt - now) s after now")
        }
        if let notBefore = claims.notBefore, notBefore > now + leeway {
            return Rejection(.notYetValid, "nbf \(notBefore) is \(notBefore - now) s after now")
        }
        if claims.expiresAt < claims.issuedAt {
            return Rejection(.malformedClaims, "exp precedes iat")
        }
        if claims.expiresAt - claims.issuedAt > config.maximumLifetime + 2 * leeway {
            return Rejection(.lifetimeTooLong, "exp − iat = \(claims.expiresAt - claims.issuedAt) s")
        }
        if !config.audiences.contains(claims.audience) {
            return Rejection(.wrongAudience, claims.audience)  // the raw aud: operators compare it to their config
        }
        if claims.issuer != config.issuer {
            return Rejection(.wrongIssuer, "iss \(claims.issuer.debugDescription)")
        }
        return nil
    }
}
