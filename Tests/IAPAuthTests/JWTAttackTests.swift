import Testing

@testable import IAPAuth

/// `jwt-attacks/jwt_attack_cases.json`: 95 attacks and edge cases, run with the corpus's own
/// verifier configuration (ES256 and RS256 allowed, its issuer, audience and clock).
@Suite("JWT attack corpus")
struct JWTAttackTests {
    /// Our policy for the cases the corpus leaves open ("valid-or-reject"), and why.
    static let pinned: [String: Bool] = [
        // ECDSA signatures are malleable: (r, n−s) is as genuine as (r, s); OpenSSL accepts both,
        // and refusing it buys nothing (a replayed token is replayable either way).
        "ecdsa-high-s": true,
        // Canonical base64url only: a second spelling of the same signature is not accepted.
        "b64-nonzero-trailing-bits": false,
        // No default key, never iterate keys: without a kid there is no key.
        "kid-missing": false,
        // b64 changes how the payload is signed; refused whether or not crit names it.
        "b64-false-no-crit": false,
        // Duplicate member names are refused outright, whichever value comes last.
        "dup-alg-last-es256": false,
        "dup-kid": false,
        // RFC 8259 JSON has no byte-order mark.
        "header-bom-prefixed": false,
        // exp is integer seconds in IAP tokens; fractions and exponents are not integers.
        "claims-exp-float": false,
        "claims-exp-huge": false,
        // IAP sends aud as a string; an array is not an IAP assertion.
        "claims-aud-array-contains": false,
    ]

    @Test("Every case gets its expected verdict; open cases get our pinned policy")
    func corpus() throws {
        let document = try Vectors.object("jwt-attacks/jwt_attack_cases.json")
        let setup = document.object("verifier_config")
        let keys = try keySet(jwks: setup.object("keyset"))
        let config = try VerifierConfig(
            audiences: [setup.string("expected_audience")], issuer: setup.string("expected_issuer"),
            algorithms: [.es256, .rs256])
        let verifier = Verifier(config: config)
        let now = setup.int64("now")
        var disagreements: [String] = []
        var reasons: [String: RejectionReason] = [:]
        let cases = document.objects("cases")
        for attack in cases {
            let id = attack.string("id")
            let expected: Bool
            switch attack.string("expect") {
            case "valid": expected = true
            case "reject": expected = false
            default:
                guard let policy = Self.pinned[id] else {
                    disagreements.append("\(id): open case without a pinned policy")
                    continue
                }
                expected = policy
            }
            let result = verifier.verify(attack.string("token"), keys: keys, now: now)
            if result.isSuccess != expected { disagreements.append("\(id): \(result)") }
            reasons[id] = result.rejectionReason
        }
        #expect(cases.count == 95)
        #expect(disagreements.isEmpty, "\(disagreements)")
        // A few reasons that operators rely on when reading logs.
        #expect(reasons["alg-none-keeps-signature"] == .algNotAllowed)
        #expect(reasons["hs256-confusion-ec-spki-pem"] == .algNotAllowed)
        #expect(reasons["alg-rs256-kid-of-ec-key"] == .algKeyMismatch)
        #expect(reasons["psychic-r0-s0"] == .badSignature)
        #expect(reasons["der-signature"] == .badSignature)
        #expect(reasons["kid-unknown"] == .unknownKid)
        #expect(reasons["crit-unknown-ext"] == .unsupportedHeader)
        #expect(reasons["jwk-embedded-victim-kid"] == .badSignature)
        #expect(reasons["huge-header-16k"] == .malformedToken)
        #expect(reasons["claims-exp-past"] == .expired)
        #expect(reasons["claims-iat-future"] == .issuedInFuture)
        #expect(reasons["claims-nbf-future"] == .notYetValid)
        #expect(reasons["claims-aud-prefix"] == .wrongAudience)
        #expect(reasons["claims-iss-trailing-slash"] == .wrongIssuer)
        #expect(reasons["claims-exp-string"] == .malformedClaims)
    }
}
