import COpenSSL

/// Why a public key could not be imported; reported with the key set, never silently skipped.
public struct KeyImportError: Error, Sendable, Equatable, CustomStringConvertible {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// A public key ready for verification, built and checked once per key set.
///
/// Invariant: `pkey` is never modified after `init`. OpenSSL 3 keys built by `EVP_PKEY_fromdata`
/// are provider-native; verification only reads them (each call creates its own operation
/// context), so one key is shared by all threads. `SharedKeyTests` runs that under TSan.
public final class VerificationKey: @unchecked Sendable {
    public enum Kind: Sendable, Equatable {
        case ecP256
        case rsa(bits: Int)
    }

    let pkey: OpaquePointer
    public let kind: Kind
    /// RSA signature length in bytes (the modulus size); 64 for ES256.
    let signatureLength: Int

    private init(pkey: OpaquePointer, kind: Kind, signatureLength: Int) {
        self.pkey = pkey
        self.kind = kind
        self.signatureLength = signatureLength
    }

    deinit { EVP_PKEY_free(pkey) }

    /// A P-256 key from its affine coordinates, each exactly 32 big-endian bytes (RFC 7518 §6.2.1).
    /// The point is checked to lie on the curve here, once, not per verification.
    public static func ecP256(x: [UInt8], y: [UInt8]) throws(KeyImportError) -> VerificationKey {
        guard x.count == 32, y.count == 32 else {
            throw KeyImportError("P-256 coordinates must be 32 bytes each (x: \(x.count), y: \(y.count))")
        }
        // OpenSSL 3 has no settable x/y: pass the uncompressed point 0x04‖X‖Y (openssl#15548).
        var point: [UInt8] = [0x04] + x + y
        let pkey = try fromData(algorithm: "EC") { context in
            OpenSSL.withCStrings([OSSL_PKEY_PARAM_GROUP_NAME, "P-256", OSSL_PKEY_PARAM_PUB_KEY]) { names in
                point.withUnsafeMutableBytes { pointBytes in
                    var params = [
                        OSSL_PARAM_construct_utf8_string(names[0], names[1], 0),
                        OSSL_PARAM_construct_octet_string(names[2], pointBytes.baseAddress, pointBytes.count),
                        OSSL_PARAM_construct_end(),
                    ]
                    return build(context, &params)
                }
            }
        }
        let key = VerificationKey(pkey: pkey, kind: .ecP256, signatureLength: 64)
        try key.checkPublicKey()
        return key
    }

    /// An RSA key from its big-endian modulus and exponent (RFC 7518 §6.3.1). Keys under 2048
    /// bits and exponents that are even or 1 are refused.
    public static func rsa(modulus: [UInt8], exponent: [UInt8]) throws(KeyImportError) -> VerificationKey {
        let modulus = Array(modulus.drop { $0 == 0 })
        let exponent = Array(exponent.drop { $0 == 0 })
        let bits = modulus.isEmpty ? 0 : modulus.count * 8 - modulus[0].leadingZeroBitCount
        guard bits >= 2048, bits <= 16384 else { throw KeyImportError("RSA modulus of \(bits) bits (2048–16384 allowed)") }
        guard let lastByte = exponent.last, lastByte & 1 == 1, exponent != [1], exponent.count <= 8 else {
            throw KeyImportError("RSA exponent must be odd, greater than 1 and at most 64 bits")
        }
        guard !hasROCAFingerprint(modulus) else {
            throw KeyImportError("RSA modulus has the ROCA fingerprint (CVE-2017-15361): the key is factorable")
        }
        let pkey = try fromData(algorithm: "RSA") { context in
            OpenSSL.withCStrings([OSSL_PKEY_PARAM_RSA_N, OSSL_PKEY_PARAM_RSA_E]) { names in
                guard let builder = OSSL_PARAM_BLD_new() else { return nil }
                defer { OSSL_PARAM_BLD_free(builder) }
                let n = BN_bin2bn(modulus, Int32(modulus.count), nil)
                let e = BN_bin2bn(exponent, Int32(exponent.count), nil)
                defer {
                    BN_free(n)
                    BN_free(e)
                }
                guard n != nil, e != nil, OSSL_PARAM_BLD_push_BN(builder, names[0], n) == 1,
                    OSSL_PARAM_BLD_push_BN(builder, names[1], e) == 1,
                    let params = OSSL_PARAM_BLD_to_param(builder)
                else { return nil }
                defer { OSSL_PARAM_free(params) }
                return build(context, params)
            }
        }
        let key = VerificationKey(pkey: pkey, kind: .rsa(bits: bits), signatureLength: modulus.count)
        try key.checkPublicKey()
        return key
    }

    /// A key from a SubjectPublicKeyInfo PEM block (the older `public_key` map format). It is
    /// re-imported from its coordinates, so PEM and JWK keys go through the same checks.
    public static func fromPEM(_ pem: String) throws(KeyImportError) -> VerificationKey {
        let parsed = try OpenSSL.withMemoryBIO(pem) { bio throws(KeyImportError) in
            guard let parsed = PEM_read_bio_PUBKEY(bio, nil, nil, nil) else {
                throw KeyImportError("not a PEM public key: \(OpenSSL.drainErrors())")
            }
            return parsed
        }
        defer { EVP_PKEY_free(parsed) }
        if EVP_PKEY_is_a(parsed, "EC") == 1 {
            guard groupName(of: parsed) == "prime256v1" else { throw KeyImportError("EC key is not on P-256") }
            guard let x = bigNumberParameter(parsed, OSSL_PKEY_PARAM_EC_PUB_X, width: 32),
                let y = bigNumberParameter(parsed, OSSL_PKEY_PARAM_EC_PUB_Y, width: 32)
            else { throw KeyImportError("cannot read the EC point") }
            return try ecP256(x: x, y: y)
        }
        if EVP_PKEY_is_a(parsed, "RSA") == 1 {
            guard let n = bigNumberParameter(parsed, OSSL_PKEY_PARAM_RSA_N, width: nil),
                let e = bigNumberParameter(parsed, OSSL_PKEY_PARAM_RSA_E, width: nil)
            else { throw KeyImportError("cannot read the RSA key") }
            return try rsa(modulus: n, exponent: e)
        }
        throw KeyImportError("unsupported public key type")
    }

    /// ROCA (CVE-2017-15361): moduli from the flawed Infineon generator are, modulo every small
    /// prime r, a power of 65537. A random modulus passes that for all primes 3…167 with negligible
    /// probability, so a match means the key must not be trusted. The subgroups are computed here
    /// from that definition.
    static func hasROCAFingerprint(_ modulus: [UInt8]) -> Bool {
        let primes = (3...167).filter { candidate in (2..<candidate).allSatisfy { candidate % $0 != 0 } }
        for prime in primes {
            let residue = modulus.reduce(0) { ($0 * 256 + Int($1)) % prime }
            let generator = 65537 % prime
            var power = 1
            var inSubgroup = false
            repeat {
                if power == residue {
                    inSubgroup = true
                    break
                }
                power = power * generator % prime
            } while power != 1
            if !inSubgroup { return false }
        }
        return true
    }

    private static func fromData(
        algorithm: String, _ body: (OpaquePointer) -> OpaquePointer?
    ) throws(KeyImportError) -> OpaquePointer {
        guard let context = EVP_PKEY_CTX_new_from_name(nil, algorithm, nil) else {
            throw KeyImportError("libcrypto has no \(algorithm): \(OpenSSL.drainErrors())")
        }
        defer { EVP_PKEY_CTX_free(context) }
        guard EVP_PKEY_fromdata_init(context) == 1, let pkey = body(context) else {
            throw KeyImportError("invalid \(algorithm) key: \(OpenSSL.drainErrors())")
        }
        return pkey
    }

    /// EVP_PKEY_fromdata with public-key selection (a shim: the selection constant is a macro).
    private static func build(_ context: OpaquePointer, _ params: UnsafeMutablePointer<OSSL_PARAM>) -> OpaquePointer? {
        var pkey: OpaquePointer?
        guard EVP_PKEY_fromdata(context, &pkey, iap_ossl_selection_public_key(), params) == 1 else { return nil }
        return pkey
    }

    /// EVP_PKEY_fromdata ignores parameters it does not know (openssl#18495), so check the result
    /// once: the EC point must be on the curve, the RSA key well-formed.
    private func checkPublicKey() throws(KeyImportError) {
        guard let context = EVP_PKEY_CTX_new_from_pkey(nil, pkey, nil) else {
            throw KeyImportError("out of memory: \(OpenSSL.drainErrors())")
        }
        defer { EVP_PKEY_CTX_free(context) }
        guard EVP_PKEY_public_check(context) == 1 else {
            throw KeyImportError("public key check failed: \(OpenSSL.drainErrors())")
        }
        let expectedBits: Int32
        switch kind {
        case .ecP256: expectedBits = 256
        case .rsa(let bits): expectedBits = Int32(bits)
        }
        guard EVP_PKEY_get_bits(pkey) == expectedBits else { throw KeyImportError("unexpected key size") }
    }

    static func groupName(of pkey: OpaquePointer) -> String? {
        var buffer = [CChar](repeating: 0, count: 64)
        var length = 0
        guard EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, &buffer, buffer.count, &length) == 1
        else {
            ERR_clear_error()
            return nil
        }
        return String(decoding: buffer.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// A BIGNUM parameter as big-endian bytes, left-padded to `width` when given.
    static func bigNumberParameter(_ pkey: OpaquePointer, _ name: String, width: Int?) -> [UInt8]? {
        var number: OpaquePointer?
        guard EVP_PKEY_get_bn_param(pkey, name, &number) == 1, let number else {
            ERR_clear_error()
            return nil
        }
        defer { BN_free(number) }
        let length = width ?? Int((BN_num_bits(number) + 7) / 8)
        var bytes = [UInt8](repeating: 0, count: length)
        guard BN_bn2binpad(number, &bytes, Int32(length)) == Int32(length) else { return nil }
        return bytes
    }
}
