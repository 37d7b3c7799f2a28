import Foundation
import Testing

@testable import IAPAuth

/// Whole-JWS vectors: Wycheproof JSON Web Signature and JSON Web Key files, RFC 7515 Appendix A
/// and the RFC 7520 cookbook. These carry payloads that are not IAP claims ("foo", RFC text), so
/// they exercise the signature stage (`verifySignature`, DESIGN rules 2–5) with ES256 and RS256
/// both allowed; the claims stage has its own vectors in `IAPTokenVectorTests`.
@Suite("JWS and JWK vectors")
struct JWSVectorTests {
    let verifier = Verifier(
        config: try! VerifierConfig(audiences: ["any"], issuer: "vectors", algorithms: [.es256, .rs256]))

    func signatureVerifies(_ jws: String, _ keys: KeySet) -> Result<Verifier.VerifiedJWS, Rejection> {
        var bytes = Array(jws.utf8)
        return bytes.withUnsafeMutableBytes { verifier.verifySignature(UnsafeRawBufferPointer($0), keys: keys) }
    }

    @Test("Wycheproof JSON Web Signature, ES256 and RS256 groups: every case agrees")
    func wycheproofJWS() throws {
        let document = try Vectors.object("wycheproof/json_web_signature_test.json")
        var checked = 0
        var disagreements: [String] = []
        for group in document.objects("testGroups") {
            let jwk = publicJWK((group["public"] ?? group["private"]) as! [String: Any])
            guard let alg = jwk["alg"] as? String, alg == "ES256" || alg == "RS256" else { continue }
            let keys = try keySet(jwks: ["keys": [jwk]])
            for test in group.objects("tests") {
                let accepted = signatureVerifies(test.string("jws"), keys).isSuccess
                // Pinned deviation: tcId 259 signs an empty payload ("h..s"), a valid JWS but never
                // an IAP assertion; DESIGN rule 2 requires three non-empty segments, so we refuse it.
                let expected = test.string("result") == "valid" && test.string("comment") != "emptyPayload"
                if accepted != expected {
                    disagreements.append("\(test.int64("tcId")) \(test.string("comment"))")
                }
                checked += 1
            }
        }
        #expect(checked == 272)
        #expect(disagreements.isEmpty, "\(disagreements)")
    }

    /// Groups whose keys we refuse at import make their tokens fail with unknown-kid; groups
    /// with only HMAC or AES keys have no usable key at all, so the whole set is refused.
    @Test("Wycheproof JSON Web Key: sets with unusable keys never verify a token; good ES256/RS256 keys do")
    func wycheproofJWK() throws {
        let document = try Vectors.object("wycheproof/json_web_key_test.json")
        var checked = 0
        var disagreements: [String] = []
        for group in document.objects("testGroups") {
            let privateSet = group.object("private")
            let published = (group["public"] as? [String: Any]) ?? privateSet
            let entries = (published["keys"] as! [[String: Any]])
            let keys = try? keySet(jwks: ["keys": entries])
            for test in group.objects("tests") {
                let expectedValid = test.string("result") == "valid"
                // Only ES256/RS256 tokens can ever verify here; HS* "valid" cases are out of policy.
                let header = try JSONSerialization.jsonObject(
                    with: Data(Base64URL.decode(test.string("jws").split(separator: ".")[0])!)) as! [String: Any]
                let inPolicy = ["ES256", "RS256"].contains(header["alg"] as? String ?? "")
                let accepted = keys.map { signatureVerifies(test.string("jws"), $0).isSuccess } ?? false
                if accepted != (expectedValid && inPolicy) {
                    disagreements.append("\(test.int64("tcId")) \(group.string("comment"))")
                }
                checked += 1
            }
        }
        #expect(checked == 26)
        #expect(disagreements.isEmpty, "\(disagreements)")
    }

    @Test("JWK import rules: duplicate kid refuses the set; bad keys are reported, not used")
    func jwkImportRules() throws {
        let document = try Vectors.object("wycheproof/json_web_key_test.json")
        func group(_ comment: String) -> [String: Any] {
            document.objects("testGroups").first { $0.string("comment") == comment }!
        }
        // Duplicate kid: refused whole, even though each key alone is fine.
        #expect(throws: KeyImportError.self) { try keySet(jwks: group("jws_duplicate_kid").object("private")) }
        // A set that carries private members: the key is reported, so the set has no usable key.
        let rsaPrivate = group("rs256").object("private")
        let error = try #require(throws: KeyImportError.self) { try keySet(jwks: rsaPrivate) }
        #expect(error.reason.contains("private key material"))
        // The same key's public half imports.
        let publicOnly = ["keys": (rsaPrivate["keys"] as! [[String: Any]]).map(publicJWK)]
        #expect(try keySet(jwks: publicOnly).keys.count == 1)
        // Wrong curve, invalid point, use=enc, small RSA, e = 1: each refused with a reason.
        for comment in [
            "wrong_curve", "invalid_point", "invalid_use", "keysize_too_small", "exponentOne", "wrong_kty",
            "jws_rsa_roca_key",
        ] {
            let keys = ["keys": (group(comment).object("private")["keys"] as! [[String: Any]]).map(publicJWK)]
            let imported = try? keySet(jwks: keys)
            #expect(imported == nil, "\(comment) imported a key")
        }
    }

    @Test("RFC 7517 A.1: the use=enc EC key is refused and reported; the RSA key is kept")
    func rfc7517Set() throws {
        let document = try Vectors.object("rfc7515-7517-examples/rfc7517_appendix_a1_jwks.json")
        let keys = try keySet(jwks: document.object("jwks"))
        #expect(keys.keyIDs == ["2011-04-29"])
        #expect(keys.problems.count == 1 && keys.problems[0].contains("\"1\""))
    }

    /// A.2/A.3 headers carry no `kid`, so IAP's rules (a kid is required) refuse them as tokens;
    /// their signatures are checked with the signature primitive, as the vector README says.
    @Test("RFC 7515 Appendix A: A.2 (RS256) and A.3 (ES256) signatures verify; A.1, A.4, A.5 are refused")
    func rfc7515() throws {
        let document = try Vectors.object("rfc7515-7517-examples/rfc7515_appendix_a.json")
        let signatures = SignatureVerifier()
        for example in document.objects("cases") {
            let id = example.string("id")
            let jws = example.string("jws")
            var bytes = Array(jws.utf8)
            let refused = bytes.withUnsafeMutableBytes { buffer in
                verifier.verify(UnsafeRawBufferPointer(buffer), keys: KeySet(keys: [:]), now: 1_300_000_000)
            }
            #expect(!refused.isSuccess, "\(id) accepted as an IAP token")
            switch id {
            case "RFC7515-A.2", "RFC7515-A.3":
                let jwk = example.object("public_jwk")
                let key: VerificationKey
                let algorithm: JWSAlgorithm
                if jwk.string("kty") == "RSA" {
                    key = try VerificationKey.rsa(
                        modulus: Base64URL.decode(jwk.string("n"))!, exponent: Base64URL.decode(jwk.string("e"))!)
                    algorithm = .rs256
                } else {
                    key = try VerificationKey.ecP256(
                        x: Base64URL.decode(jwk.string("x"))!, y: Base64URL.decode(jwk.string("y"))!)
                    algorithm = .es256
                }
                let parts = jws.split(separator: ".")
                let input = Array("\(parts[0]).\(parts[1])".utf8)
                let signature = Base64URL.decode(parts[2])!
                let verified = input.withUnsafeBytes { message in
                    signature.withUnsafeBytes { signatures.verify(algorithm, signature: $0, message: message, key: key) }
                }
                #expect(verified, "\(id)")
                // With a kid added to the key set the header still has none: malformed-token.
                #expect(refused.rejectionReason == .malformedToken)
            case "RFC7515-A.5":
                // alg none has an empty signature segment: not a compact JWS by rule 2.
                #expect(refused.rejectionReason == .malformedToken)
            default:
                // HS256 and ES512 are outside ES256/RS256.
                #expect(refused.rejectionReason == .algNotAllowed, "\(id)")
            }
        }
    }

    @Test("RFC 7520 cookbook 4.1 (RS256) verifies; the other JWS examples are refused")
    func cookbook() throws {
        let rs256 = try Vectors.object("jose-cookbook-rfc7520/jws/4_1.rsa_v15_signature.json")
        let keys = try keySet(jwks: ["keys": [publicJWK(rs256.object("input").object("key"))]])
        let compact = rs256.object("output").string("compact")
        #expect(signatureVerifies(compact, keys).isSuccess)
        for file in [
            "4_2.rsa-pss_signature.json", "4_3.ecdsa_signature.json", "4_4.hmac-sha2_integrity_protection.json",
            "4_6.protecting_specific_header_fields.json",
        ] {
            let example = try Vectors.object("jose-cookbook-rfc7520/jws/\(file)")
            guard let compact = (example["output"] as? [String: Any])?["compact"] as? String else { continue }
            #expect(!signatureVerifies(compact, keys).isSuccess, "\(file)")
        }
        let detached = try Vectors.object("jose-cookbook-rfc7520/jws/4_5.signature_with_detached_content.json")
        let detachedCompact = detached.object("output").string("compact")
        #expect(signatureVerifies(detachedCompact, keys).rejectionReason == .malformedToken)
    }

    @Test("RFC 7797 b64=false is refused (crit/b64 unsupported)")
    func unencodedPayload() throws {
        let example = try Vectors.object("jose-cookbook-rfc7520/rfc7797/4.2.hmac-sha2_b64_false.json")
        let text = String(decoding: try jsonBytes(example), as: UTF8.self)
        // Every compact form in the file is refused: HS256 is out of policy, b64 is unsupported.
        let compacts = text.split(separator: "\"").filter { $0.split(separator: ".", omittingEmptySubsequences: false).count == 3 && $0.hasPrefix("ey") }
        #expect(!compacts.isEmpty)
        let keys = try keySet(jwks: ["keys": [publicJWK(rs256Key())]])
        for compact in compacts {
            #expect(!signatureVerifies(String(compact), keys).isSuccess)
        }
    }

    func rs256Key() throws -> [String: Any] {
        try Vectors.object("jose-cookbook-rfc7520/jws/4_1.rsa_v15_signature.json").object("input").object("key")
    }
}
