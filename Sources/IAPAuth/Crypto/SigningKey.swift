import COpenSSL

/// A P-256 private key for `keygen` and `mint`: local development and tests only. Nothing in the
/// verification path uses it.
public final class SigningKey {
    private let pkey: OpaquePointer

    private init(pkey: OpaquePointer) { self.pkey = pkey }

    deinit { EVP_PKEY_free(pkey) }

    /// A fresh P-256 key from OpenSSL's CSPRNG.
    public static func generateP256() throws(KeyImportError) -> SigningKey {
        guard let context = EVP_PKEY_CTX_new_from_name(nil, "EC", nil) else {
            throw KeyImportError("no EC support: \(OpenSSL.drainErrors())")
        }
        defer { EVP_PKEY_CTX_free(context) }
        var pkey: OpaquePointer?
        guard EVP_PKEY_keygen_init(context) == 1, EVP_PKEY_CTX_set_group_name(context, "P-256") == 1,
            EVP_PKEY_generate(context, &pkey) == 1, let pkey
        else { throw KeyImportError("key generation failed: \(OpenSSL.drainErrors())") }
        return SigningKey(pkey: pkey)
    }

    /// A P-256 private key from PEM (PKCS#8 or SEC1).
    public static func fromPEM(_ pem: String) throws(KeyImportError) -> SigningKey {
        let pkey = try OpenSSL.withMemoryBIO(pem) { bio throws(KeyImportError) in
            guard let pkey = PEM_read_bio_PrivateKey(bio, nil, nil, nil) else {
                throw KeyImportError("not a PEM private key: \(OpenSSL.drainErrors())")
            }
            return pkey
        }
        guard EVP_PKEY_is_a(pkey, "EC") == 1, VerificationKey.groupName(of: pkey) == "prime256v1" else {
            EVP_PKEY_free(pkey)
            throw KeyImportError("not a P-256 key: ES256 needs one")
        }
        return SigningKey(pkey: pkey)
    }

    /// The key as unencrypted PKCS#8 PEM ("BEGIN PRIVATE KEY").
    public func pkcs8PEM() -> String {
        guard let bio = BIO_new(BIO_s_mem()) else { fatalError("BIO_new: out of memory") }
        defer { BIO_free(bio) }
        guard PEM_write_bio_PKCS8PrivateKey(bio, pkey, nil, nil, 0, nil, nil) == 1 else {
            fatalError("PEM_write_bio_PKCS8PrivateKey: \(OpenSSL.drainErrors())")
        }
        var pem = [UInt8](repeating: 0, count: Int(BIO_ctrl_pending(bio)))
        let read = BIO_read(bio, &pem, Int32(pem.count))
        return String(decoding: pem.prefix(Int(max(read, 0))), as: UTF8.self)
    }

    /// The public point's affine coordinates, 32 bytes each.
    public func publicCoordinates() -> (x: [UInt8], y: [UInt8]) {
        guard let x = VerificationKey.bigNumberParameter(pkey, OSSL_PKEY_PARAM_EC_PUB_X, width: 32),
            let y = VerificationKey.bigNumberParameter(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, width: 32)
        else { fatalError("cannot export the public point: \(OpenSSL.drainErrors())") }
        return (x, y)
    }

    /// The public half as a JWK in Google's IAP key-set style.
    public func publicJWK(kid: String) -> JSONValue {
        let (x, y) = publicCoordinates()
        return .object(
            JSONObject([
                .init(name: "alg", value: .string("ES256")),
                .init(name: "crv", value: .string("P-256")),
                .init(name: "kid", value: .string(kid)),
                .init(name: "kty", value: .string("EC")),
                .init(name: "use", value: .string("sig")),
                .init(name: "x", value: .string(Base64URL.encode(x))),
                .init(name: "y", value: .string(Base64URL.encode(y))),
            ]))
    }

    /// RFC 7638 JWK thumbprint (SHA-256, base64url): a stable default `kid`.
    public func thumbprint() -> String {
        let (x, y) = publicCoordinates()
        let canonical = "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"\(Base64URL.encode(x))\",\"y\":\"\(Base64URL.encode(y))\"}"
        return Base64URL.encode(MessageDigest.sha256.hash(Array(canonical.utf8)))
    }

    /// A compact ES256 JWS of `claims` with `header` (which should name `"alg":"ES256"` and a kid).
    public func compactJWS(header: JSONValue, claims: JSONValue) throws(KeyImportError) -> String {
        let signingInput =
            Base64URL.encode(Array(header.serialized().utf8)) + "." + Base64URL.encode(Array(claims.serialized().utf8))
        return signingInput + "." + Base64URL.encode(try signES256(Array(signingInput.utf8)))
    }

    /// An ES256 signature of `message`: raw r‖s, 64 bytes.
    public func signES256(_ message: [UInt8]) throws(KeyImportError) -> [UInt8] {
        guard let context = EVP_MD_CTX_new() else { throw KeyImportError("out of memory") }
        defer { EVP_MD_CTX_free(context) }
        guard EVP_DigestSignInit(context, nil, MessageDigest.sha256.pointer, nil, pkey) == 1 else {
            throw KeyImportError("EVP_DigestSignInit: \(OpenSSL.drainErrors())")
        }
        var length = 0
        guard EVP_DigestSign(context, nil, &length, message, message.count) == 1 else {
            throw KeyImportError("EVP_DigestSign: \(OpenSSL.drainErrors())")
        }
        var der = [UInt8](repeating: 0, count: length)
        guard EVP_DigestSign(context, &der, &length, message, message.count) == 1,
            let raw = ECDSASignature.rawRS(fromDER: Array(der.prefix(length)))
        else { throw KeyImportError("EVP_DigestSign: \(OpenSSL.drainErrors())") }
        return raw
    }
}
