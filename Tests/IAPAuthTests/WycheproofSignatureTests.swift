import Testing

@testable import IAPAuth

/// Wycheproof's signature primitives (`wycheproof/`): ES256 as JWS carries it (P1363 r‖s), the
/// DER variant, and RSA PKCS#1 v1.5 for RS256.
@Suite("Wycheproof signature primitives")
struct WycheproofSignatureTests {
    let verifier = SignatureVerifier()

    func verify(_ algorithm: JWSAlgorithm, _ signature: [UInt8], _ message: [UInt8], _ key: VerificationKey) -> Bool {
        message.withUnsafeBytes { message in
            signature.withUnsafeBytes { verifier.verify(algorithm, signature: $0, message: message, key: key) }
        }
    }

    /// The group's key through the JWK path: `publicKeyJwk` when present, else `publicKey.wx/wy`
    /// (hex, possibly with a sign byte or short) left-padded to 32 bytes.
    func ecKey(_ group: [String: Any]) throws -> VerificationKey {
        if let jwk = group["publicKeyJwk"] as? [String: Any] {
            return try VerificationKey.ecP256(
                x: Base64URL.decode(jwk.string("x"))!, y: Base64URL.decode(jwk.string("y"))!)
        }
        func coordinate(_ hex: String) -> [UInt8] {
            let bytes = Array([UInt8](hex: hex).drop { $0 == 0 })
            return [UInt8](repeating: 0, count: 32 - bytes.count) + bytes
        }
        let point = group.object("publicKey")
        return try VerificationKey.ecP256(x: coordinate(point.string("wx")), y: coordinate(point.string("wy")))
    }

    @Test("ECDSA P-256/SHA-256 P1363: every case agrees, keys imported from JWK and from PEM")
    func ecdsaP1363() throws {
        let document = try Vectors.object("wycheproof/ecdsa_secp256r1_sha256_p1363_test.json")
        var checked = 0
        var disagreements: [Int] = []
        for group in document.objects("testGroups") {
            let fromJWK = try ecKey(group)
            let fromPEM = try VerificationKey.fromPEM(group.string("publicKeyPem"))
            for test in group.objects("tests") {
                let expected = test.string("result") == "valid"
                let message = [UInt8](hex: test.string("msg"))
                let signature = [UInt8](hex: test.string("sig"))
                if verify(.es256, signature, message, fromJWK) != expected
                    || verify(.es256, signature, message, fromPEM) != expected
                {
                    disagreements.append(Int(test.int64("tcId")))
                }
                checked += 1
            }
        }
        #expect(checked == 262)
        #expect(disagreements.isEmpty, "tcIds: \(disagreements)")
    }

    @Test("ECDSA P-256 DER: a raw-only ES256 verifier refuses every DER signature; valid ones verify once converted")
    func ecdsaDER() throws {
        let document = try Vectors.object("wycheproof/ecdsa_secp256r1_sha256_test.json")
        var checked = 0
        var validConverted = 0
        for group in document.objects("testGroups") {
            let key = try VerificationKey.fromPEM(group.string("publicKeyPem"))
            for test in group.objects("tests") {
                let message = [UInt8](hex: test.string("msg"))
                let der = [UInt8](hex: test.string("sig"))
                // JWS ES256 is never DER: the raw-length check alone must refuse it.
                #expect(!verify(.es256, der, message, key), "tcId \(test.int64("tcId")) accepted as raw")
                if test.string("result") == "valid" {
                    let raw = try #require(ECDSASignature.rawRS(fromDER: der), "tcId \(test.int64("tcId"))")
                    #expect(verify(.es256, raw, message, key), "tcId \(test.int64("tcId"))")
                    validConverted += 1
                }
                checked += 1
            }
        }
        #expect(checked == 484)
        #expect(validConverted > 0)
    }

    @Test("RSA 2048 PKCS#1 v1.5 SHA-256: every valid/invalid case agrees ('acceptable' may go either way)")
    func rsa2048() throws {
        let document = try Vectors.object("wycheproof/rsa_signature_2048_sha256_test.json")
        var checked = 0
        var disagreements: [Int] = []
        for group in document.objects("testGroups") {
            let jwk = group.object("keyJwk")
            let key = try VerificationKey.rsa(
                modulus: Base64URL.decode(jwk.string("n"))!, exponent: Base64URL.decode(jwk.string("e"))!)
            let fromPEM = try VerificationKey.fromPEM(group.string("publicKeyPem"))
            for test in group.objects("tests") {
                let result = test.string("result")
                let message = [UInt8](hex: test.string("msg"))
                let signature = [UInt8](hex: test.string("sig"))
                let accepted = verify(.rs256, signature, message, key)
                #expect(accepted == verify(.rs256, signature, message, fromPEM))
                if result != "acceptable" && accepted != (result == "valid") {
                    disagreements.append(Int(test.int64("tcId")))
                }
                checked += 1
            }
        }
        #expect(checked == 259)
        #expect(disagreements.isEmpty, "tcIds: \(disagreements)")
    }

    @Test("r and s must lie in 1..<n before OpenSSL sees them")
    func scalarRange() {
        let n = ECDSASignature.groupOrder
        var nMinusOne = n
        nMinusOne[31] -= 1
        #expect(ECDSASignature.isValidScalar(nMinusOne[...]))
        #expect(!ECDSASignature.isValidScalar(n[...]))
        #expect(!ECDSASignature.isValidScalar([UInt8](repeating: 0, count: 32)[...]))
        #expect(!ECDSASignature.isValidScalar([UInt8](repeating: 0xFF, count: 32)[...]))
        #expect(ECDSASignature.isValidScalar(([UInt8](repeating: 0, count: 31) + [1])[...]))
        #expect((n + n).withUnsafeBytes { ECDSASignature.der(fromRawRS: $0) } == nil)
        #expect([UInt8](repeating: 0, count: 64).withUnsafeBytes { ECDSASignature.der(fromRawRS: $0) } == nil)
    }
}
