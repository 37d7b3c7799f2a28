import Testing

@testable import IAPAuth

/// Every rejection reason the verifier can return, each leeway boundary, and the configuration
/// rules, with tokens minted from generated keys.
@Suite("Verifier rules")
struct VerifierTests {
    static let now: Int64 = 1_800_000_000
    let key = try! SigningKey.generateP256()
    let otherKey = try! SigningKey.generateP256()
    let keys: KeySet
    let verifier = Verifier(config: try! VerifierConfig(audiences: [TokenFactory.audience]))

    init() throws { keys = try TokenFactory.keySet(["k1": key]) }

    func verify(_ token: String, at now: Int64 = Self.now, with verifier: Verifier? = nil) -> Result<Identity, Rejection> {
        (verifier ?? self.verifier).verify(token, keys: keys, now: now)
    }

    func token(_ change: (inout [String: JSONValue]) -> Void = { _ in }, header: [String: JSONValue]? = nil) throws -> String {
        var claims = TokenFactory.claims(now: Self.now)
        change(&claims)
        return try TokenFactory.token(header: header, claims: claims, key: key, kid: "k1")
    }

    @Test("A valid token yields the identity: email lowercased, hd, sub, access levels")
    func valid() throws {
        let minted = try token {
            $0["email"] = .string("Alice@Example.COM")
            $0["google"] = TokenFactory.object(["access_levels": .array([.string("accessPolicies/1/accessLevels/corp")])])
        }
        let identity = try verify(minted).get()
        #expect(identity.email == "alice@example.com")
        #expect(identity.hostedDomain == "example.com")
        #expect(identity.subject == "accounts.google.com:1")
        #expect(identity.accessLevels == ["accessPolicies/1/accessLevels/corp"])
        #expect(identity.keyID == "k1")
        #expect(identity.claims["email"] == .string("Alice@Example.COM"))
    }

    @Test("exp: exactly at the leeway passes, one second more fails")
    func expiryBoundary() throws {
        let minted = try token()
        let exp = Self.now + 600
        #expect(verify(minted, at: exp + 30).isSuccess)
        #expect(verify(minted, at: exp + 31).rejectionReason == .expired)
        let strict = Verifier(config: try VerifierConfig(audiences: [TokenFactory.audience], leeway: 0))
        #expect(verify(minted, at: exp, with: strict).isSuccess)
        #expect(verify(minted, at: exp + 1, with: strict).rejectionReason == .expired)
    }

    @Test("iat: exactly at the leeway passes, one second more fails")
    func issuedAtBoundary() throws {
        let minted = try token()
        #expect(verify(minted, at: Self.now - 30).isSuccess)
        #expect(verify(minted, at: Self.now - 31).rejectionReason == .issuedInFuture)
    }

    @Test("nbf, when present, is honoured with the same leeway")
    func notBefore() throws {
        let minted = try token { $0["nbf"] = .number(String(Self.now + 60)) }
        #expect(verify(minted, at: Self.now + 30).isSuccess)
        #expect(verify(minted, at: Self.now + 29).rejectionReason == .notYetValid)
    }

    @Test("Lifetime: 600 s + 2×leeway passes, one second more fails")
    func lifetime() throws {
        let longest = try token { $0["exp"] = .number(String(Self.now + 660)) }
        #expect(verify(longest).isSuccess)
        let tooLong = try token { $0["exp"] = .number(String(Self.now + 661)) }
        #expect(verify(tooLong).rejectionReason == .lifetimeTooLong)
        let backwards = try token { $0["exp"] = .number(String(Self.now - 10)) }
        #expect(verify(backwards).rejectionReason == .malformedClaims)
    }

    @Test("aud must equal one configured audience exactly; iss exactly IAP's")
    func audienceAndIssuer() throws {
        #expect(verify(try token { $0["aud"] = .string(TokenFactory.audience + "/") }).rejectionReason == .wrongAudience)
        #expect(verify(try token { $0["aud"] = .string("/projects/1/apps/A") }).rejectionReason == .wrongAudience)
        let two = Verifier(config: try VerifierConfig(audiences: ["/projects/2/apps/b", TokenFactory.audience]))
        #expect(verify(try token(), with: two).isSuccess)
        #expect(verify(try token { $0["iss"] = .string("https://accounts.google.com") }).rejectionReason == .wrongIssuer)
        #expect(verify(try token { $0["iss"] = .string("https://cloud.google.com/iap/") }).rejectionReason == .wrongIssuer)
    }

    @Test("Claims of the wrong type or missing are malformed-claims", arguments: [
        "exp", "iat", "aud", "iss", "email", "sub",
    ])
    func missingClaim(_ name: String) throws {
        #expect(verify(try token { $0[name] = nil }).rejectionReason == .malformedClaims)
        #expect(verify(try token { $0[name] = .array([]) }).rejectionReason == .malformedClaims)
    }

    @Test("Claim types: exp as string, fraction or negative; hd not a string; access_levels not strings")
    func claimTypes() throws {
        for bad: JSONValue in [.string("1800000600"), .number("1800000600.5"), .number("1.8e9"), .number("-1")] {
            #expect(verify(try token { $0["exp"] = bad }).rejectionReason == .malformedClaims, "\(bad)")
        }
        #expect(verify(try token { $0["hd"] = .bool(true) }).rejectionReason == .malformedClaims)
        #expect(verify(try token { $0["google"] = .string("x") }).rejectionReason == .malformedClaims)
        let badLevels = TokenFactory.object(["access_levels": .array([.number("1")])])
        #expect(verify(try token { $0["google"] = badLevels }).rejectionReason == .malformedClaims)
        #expect(verify(try token { $0["email"] = .string("") }).rejectionReason == .malformedClaims)
        // Identity values become header values: CR/LF/NUL would be header injection.
        for name in ["email", "sub", "hd"] {
            for bad in ["a\r\nX-Admin: 1@example.com", "a\u{0}b@example.com", "a\u{7F}@example.com"] {
                #expect(verify(try token { $0[name] = .string(bad) }).rejectionReason == .malformedClaims, "\(name)")
            }
        }
    }

    @Test("Header: alg pinned after JSON decoding; crit/b64 refused; kid required")
    func header() throws {
        func header(_ fields: [String: JSONValue]) throws -> String { try token(header: fields) }
        let kid: JSONValue = .string("k1")
        #expect(verify(try header(["alg": .string("RS256"), "kid": kid])).rejectionReason == .algNotAllowed)
        #expect(verify(try header(["alg": .string("es256"), "kid": kid])).rejectionReason == .algNotAllowed)
        #expect(verify(try header(["alg": .string("none"), "kid": kid])).rejectionReason == .algNotAllowed)
        #expect(verify(try header(["alg": .null, "kid": kid])).rejectionReason == .algNotAllowed)
        #expect(verify(try header(["kid": kid])).rejectionReason == .algNotAllowed)
        #expect(verify(try header(["alg": .string("ES256"), "kid": kid, "crit": .array([])])).rejectionReason == .unsupportedHeader)
        #expect(verify(try header(["alg": .string("ES256"), "kid": kid, "b64": .bool(true)])).rejectionReason == .unsupportedHeader)
        #expect(verify(try header(["alg": .string("ES256")])).rejectionReason == .malformedToken)
        #expect(verify(try header(["alg": .string("ES256"), "kid": .number("1")])).rejectionReason == .malformedToken)
        // jku/x5u/jwk/x5c are ignored: the token still verifies only with our key.
        let ignored = try header(["alg": .string("ES256"), "kid": kid, "jku": .string("https://attacker.example/jwks")])
        #expect(verify(ignored).isSuccess)
    }

    @Test("Duplicate JSON names in header or claims are refused")
    func duplicateNames() throws {
        let headerJSON = #"{"alg":"ES256","kid":"k1","kid":"k1"}"#
        let claimsJSON = TokenFactory.object(TokenFactory.claims(now: Self.now)).serialized()
        let duplicated = String(claimsJSON.dropLast()) + #","email":"mallory@example.com"}"#
        for (header, claims, reason) in [
            (headerJSON, claimsJSON, RejectionReason.malformedToken),
            (#"{"alg":"ES256","kid":"k1"}"#, duplicated, .malformedClaims),
        ] {
            let input = Base64URL.encode(Array(header.utf8)) + "." + Base64URL.encode(Array(claims.utf8))
            let minted = input + "." + Base64URL.encode(try key.signES256(Array(input.utf8)))
            #expect(verify(minted).rejectionReason == reason)
        }
    }

    @Test("Keys: unknown kid, kid of another key, no key set, alg/key type mismatch")
    func keySelection() throws {
        let unknown = try TokenFactory.token(claims: TokenFactory.claims(now: Self.now), key: key, kid: "nope")
        #expect(verify(unknown).rejectionReason == .unknownKid)
        let signedByOther = try TokenFactory.token(claims: TokenFactory.claims(now: Self.now), key: otherKey, kid: "k1")
        #expect(verify(signedByOther).rejectionReason == .badSignature)
        #expect(verifier.verify(try token(), keys: nil, now: Self.now).rejectionReason == .keysUnavailable)
    }

    @Test("Structure: segments, base64url canonical form, size cap")
    func structure() throws {
        let good = try token()
        let parts = good.split(separator: ".").map(String.init)
        for bad in [
            "", parts[0] + "." + parts[1], good + ".", good + ".AAAA", " " + good, good + "\n", parts[0] + ".." + parts[2],
            parts[0] + "." + parts[1] + "." + parts[2] + "==", good.replacingOccurrences(of: "-", with: "+"),
        ] where bad != good {
            #expect(verify(bad).rejectionReason == .malformedToken, "\(bad.debugDescription)")
        }
        let capped = Verifier(config: try VerifierConfig(audiences: [TokenFactory.audience], maximumTokenBytes: good.utf8.count))
        #expect(verify(good, with: capped).isSuccess)
        let tooSmall = Verifier(
            config: try VerifierConfig(audiences: [TokenFactory.audience], maximumTokenBytes: good.utf8.count - 1))
        #expect(verify(good, with: tooSmall).rejectionReason == .malformedToken)
    }

    @Test("Signature bytes: flipped, truncated, DER, zero")
    func signatureBytes() throws {
        let parts = try token().split(separator: ".").map(String.init)
        var signature = Base64URL.decode(parts[2])!
        signature[10] ^= 1
        let variants: [[UInt8]] = [signature, Array(signature.prefix(63)), signature + [0], [UInt8](repeating: 0, count: 64)]
        for variant in variants {
            let minted = parts[0] + "." + parts[1] + "." + Base64URL.encode(variant)
            #expect(verify(minted).rejectionReason == .badSignature)
        }
    }

    @Test("Configuration: empty audiences, bad shapes and odd settings are all reported at once")
    func configuration() {
        let error = #expect(throws: ConfigurationError.self) {
            try VerifierConfig(audiences: [], leeway: -1, algorithms: [])
        }
        #expect(error?.problems.count == 3)
        let shapes = #expect(throws: ConfigurationError.self) {
            try VerifierConfig(audiences: ["my-app", "/projects/x/apps/a", "/projects/1/global/backendServices/a1"])
        }
        #expect(shapes?.problems.count == 3)
        for valid in [
            "/projects/123/global/backendServices/456", "/projects/123/apps/my-project",
            "/projects/123/apps/example.com:my-project", "/projects/123/locations/europe-west1/services/hello",
            "/projects/123/regions/us-central1/backendServices/789",
        ] {
            #expect(IAPAudience.isValid(valid), "\(valid)")
        }
        // Other issuers (Google ID tokens) take any audience string.
        #expect((try? VerifierConfig(audiences: ["https://example.com"], issuer: "https://accounts.google.com")) != nil)
    }

    @Test("Every rejection reason has a stable kebab-case code")
    func reasonCodes() {
        for reason in RejectionReason.allCases {
            #expect(reason.rawValue.allSatisfy { $0.isLowercase || $0 == "-" }, "\(reason)")
        }
        #expect(Set(RejectionReason.allCases.map(\.rawValue)).count == RejectionReason.allCases.count)
    }
}
