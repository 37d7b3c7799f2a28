import Foundation
import Testing

@testable import IAPAuth

/// Real IAP assertions with the Google key sets that signed them, Google's own nginx IAP module
/// cases, and real RS256 Google ID tokens: the full verifier, claims included, at pinned clocks.
@Suite("IAP token vectors")
struct IAPTokenVectorTests {
    /// A key set named by a vector: a JWK set file, or the PEM-map snapshot (read as PEM).
    func loadKeySet(_ path: String) throws -> KeySet {
        let document = try Vectors.object("google-iap/\(path)")
        if let pemMap = document["pem_map"] { return try KeySet.parse(try jsonBytes(pemMap)) }
        return try KeySet.parse(try Vectors.bytes("google-iap/\(path)"))
    }

    func removing(_ kid: String, from keys: KeySet) -> KeySet {
        KeySet(keys: keys.keys.filter { $0.key != kid })
    }

    func kid(of token: String) throws -> String {
        let header = try JSONValue.parse(Base64URL.decode(token.split(separator: ".")[0])!)
        return header.objectValue!["kid"]!.stringValue!
    }

    /// Runs every `checks` entry of a token record and returns the disagreements.
    func runChecks(_ record: [String: Any], keysetPath: String, algorithms: Set<JWSAlgorithm> = [.es256],
                   maximumLifetime: Int64 = VerifierConfig.iapMaximumLifetime) throws -> [String] {
        let baseKeys = try loadKeySet(keysetPath)
        var disagreements: [String] = []
        for check in record.objects("checks") {
            var token = record.string("token")
            var keys = baseKeys
            if check["token_transform"] != nil { token += "x" }
            if check["keyset_transform"] != nil { keys = removing(try kid(of: token), from: keys) }
            let config = try VerifierConfig(
                audiences: [check.string("audience")],
                issuer: (check["expected_issuer"] as? String) ?? (record["expected_issuer"] as? String)
                    ?? VerifierConfig.iapIssuer,
                maximumLifetime: maximumLifetime, algorithms: algorithms)
            let result = Verifier(config: config).verify(token, keys: keys, now: check.int64("now"))
            let expected = check.string("expect") == "valid"
            if result.isSuccess != expected {
                disagreements.append("\(record.string("id")) now=\(check.int64("now")): \(result)")
            }
            if case .success(let identity) = result {
                let claims = record.object("claims")
                #expect(identity.email == (claims["email"] as! String).lowercased())
                #expect(identity.subject == claims["sub"] as! String)
                #expect(identity.hostedDomain == claims["hd"] as? String)
                #expect(identity.audience == claims["aud"] as! String)
                let levels = (claims["google"] as? [String: Any])?["access_levels"] as? [String] ?? []
                #expect(identity.accessLevels == levels)
            }
        }
        return disagreements
    }

    @Test("iap_tokens.json: every check of every real IAP token at its pinned clock")
    func pinnedIAPTokens() throws {
        let document = try Vectors.object("google-iap/iap_tokens.json")
        var disagreements: [String] = []
        var checks = 0
        for record in document.objects("tokens") {
            disagreements += try runChecks(record, keysetPath: record.string("keyset"))
            checks += record.objects("checks").count
        }
        #expect(checks == 21)
        #expect(disagreements.isEmpty, "\(disagreements)")
    }

    @Test("iap_tokens_unpinned.json: verifiable tokens verify; unpublished kids are unknown")
    func unpinnedIAPTokens() throws {
        let document = try Vectors.object("google-iap/iap_tokens_unpinned.json")
        var disagreements: [String] = []
        for record in document.objects("tokens") {
            let provenance = record.object("provenance")
            if let path = provenance["keyset"] as? String {
                let file = String(path.split(separator: " ")[0])
                disagreements += try runChecks(record, keysetPath: file)
            } else {
                // No key was ever published for these kids: unknown in every set we have.
                let check = record.objects("checks")[0]
                let config = try VerifierConfig(audiences: [check.string("audience")])
                for path in ["google-auth-library-java/iap_keys.json", "google-auth-library-ruby/iap_public_key-jwk_snapshot.json"] {
                    let result = Verifier(config: config).verify(
                        record.string("token"), keys: try loadKeySet(path), now: check.int64("now"))
                    #expect(result.rejectionReason == .unknownKid, "\(record.string("id"))")
                }
            }
        }
        #expect(disagreements.isEmpty, "\(disagreements)")
    }

    @Test("The PEM-map snapshot and its JWK conversion hold the same keys")
    func pemMapMatchesJWKS() throws {
        let pem = try loadKeySet("unpinned/iap_public_key_pem_snapshot_circa2018.json")
        let document = try Vectors.object("google-iap/unpinned/iap_public_key_pem_snapshot_circa2018.json")
        let jwks = try KeySet.parse(try jsonBytes(document["as_jwks"]!))
        #expect(pem.keyIDs == jwks.keyIDs)
        #expect(pem.problems.isEmpty && pem.keys.count >= 2)
    }

    /// Google ID tokens are RS256 with a one-hour life and another issuer: they verify only with a
    /// configuration that names RS256, and never under the IAP default (ES256 only).
    @Test("google_id_tokens_rs256.json: RS256 verifies only where configured")
    func googleIDTokens() throws {
        let document = try Vectors.object("google-iap/google_id_tokens_rs256.json")
        var disagreements: [String] = []
        for record in document.objects("tokens") {
            guard let path = record["keyset"] as? String else {
                let check = record.objects("checks")[0]
                let config = try VerifierConfig(
                    audiences: [record.string("expected_audience")], issuer: record.string("expected_issuer"),
                    maximumLifetime: 3600, algorithms: [.rs256])
                let keys = try loadKeySet("google-auth-library-java/federated_keys.json")
                let result = Verifier(config: config).verify(record.string("token"), keys: keys, now: check.int64("now"))
                #expect(result.rejectionReason == .unknownKid)
                continue
            }
            disagreements += try runChecks(record, keysetPath: path, algorithms: [.rs256], maximumLifetime: 3600)
            // The IAP default (ES256 only) refuses the same token at the same clock.
            let valid = record.objects("checks").first { $0.string("expect") == "valid" }!
            let iapDefault = try VerifierConfig(audiences: [valid.string("audience")], issuer: record.string("expected_issuer"))
            let result = Verifier(config: iapDefault).verify(
                record.string("token"), keys: try loadKeySet(path), now: valid.int64("now"))
            #expect(result.rejectionReason == .algNotAllowed)
        }
        #expect(disagreements.isEmpty, "\(disagreements)")
    }

    /// Google's nginx module allows 60 s of skew and does not bound the lifetime; its two
    /// `nginx-*VALID_JWT` tokens live for millennia (exp 133713371337). We run every case with
    /// leeway 60 and pin the difference: under IAP's rule 8 those two are `lifetime-too-long`,
    /// and with the lifetime bound lifted (a test-only setting) they verify, proving the rest.
    @Test("Google nginx IAP module cases, with the module's 60 s skew")
    func nginxModule() throws {
        let document = try Vectors.object("google-iap/appengine-sidecars-nginx-iap/iap_nginx_module_cases.json")
        let baseKeys = try KeySet.parse(try Vectors.bytes("google-iap/appengine-sidecars-nginx-iap/keys.jwk"))
        var disagreements: [String] = []
        for testCase in document.objects("cases") {
            let id = testCase.string("id")
            let token = testCase.string("token")
            var keys = baseKeys
            if testCase["keyset_transform"] != nil { keys = removing("1a", from: keys) }
            let audience = testCase.string("audience")
            guard IAPAudience.isValid(audience) else {
                // "wrong" is not an IAP audience: we refuse that configuration outright.
                #expect(throws: ConfigurationError.self) { try VerifierConfig(audiences: [audience], leeway: 60) }
                let other = try VerifierConfig(audiences: ["/projects/1234/apps/other-app"], leeway: 60)
                let result = Verifier(config: other).verify(token, keys: keys, now: testCase.int64("now"))
                #expect(result.rejectionReason == .wrongAudience, "\(id)")
                continue
            }
            let expected = testCase.string("expect") == "valid"
            let strict = Verifier(config: try VerifierConfig(audiences: [audience], leeway: 60))
            let result = strict.verify(token, keys: keys, now: testCase.int64("now"))
            if id == "nginx-VALID_JWT" || id == "nginx-OTHER_VALID_JWT" {
                #expect(result.rejectionReason == .lifetimeTooLong, "\(id)")
                let unbounded = Verifier(
                    config: try VerifierConfig(audiences: [audience], leeway: 60, maximumLifetime: Int64(1) << 40))
                if unbounded.verify(token, keys: keys, now: testCase.int64("now")).isSuccess != expected {
                    disagreements.append(id)
                }
            } else if result.isSuccess != expected {
                disagreements.append("\(id): \(result)")
            }
        }
        #expect(disagreements.isEmpty, "\(disagreements)")
    }

    @Test("nginx module: compact split, claim types and base64/JSON cases")
    func nginxParsing() throws {
        let document = try Vectors.object("google-iap/appengine-sidecars-nginx-iap/iap_nginx_module_cases.json")
        for split in document.objects("compact_split_cases") {
            var bytes = Array(split.string("input").utf8)
            let parsed = bytes.withUnsafeMutableBytes { CompactJWS.segments(of: UnsafeRawBufferPointer($0)) }
            #expect((parsed != nil) == (split["expect_three_nonempty_parts"] as! Bool), "\(split.string("input"))")
        }
        for b64 in document.objects("base64_json_cases") {
            let decoded = Base64URL.decode(b64.string("b64"))
            let json = decoded.flatMap { try? JSONValue.parse($0) }
            if b64["expect"] is String {
                #expect(json == nil, "\(b64.string("b64"))")
            } else {
                #expect(json == .object(JSONObject([.init(name: "valid", value: .string("json"))])))
            }
        }
        // Claim types: each wrong type is refused as malformed claims (after a valid signature).
        let key = try SigningKey.generateP256()
        let keys = try TokenFactory.keySet(["k": key])
        let verifier = Verifier(config: try VerifierConfig(audiences: ["/projects/1/apps/a"]))
        for claimCase in document.objects("claim_type_cases") {
            var claims = TokenFactory.claims(now: 1000)
            let name = claimCase.string("claim")
            claims[name] = try JSONValue.parse(try jsonBytes(["v": claimCase["json_value"]!])).objectValue!["v"]!
            let token = try TokenFactory.token(claims: claims, key: key, kid: "k")
            #expect(verifier.verify(token, keys: keys, now: 1000).rejectionReason == .malformedClaims, "\(claimCase)")
        }
    }
}
