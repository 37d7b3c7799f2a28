import COpenSSL

/// JWS signature algorithms iap-proxy knows. IAP signs with ES256 only; RS256 exists for Google
/// ID tokens and is accepted only where a configuration names it.
public enum JWSAlgorithm: String, Sendable, Hashable, CaseIterable {
    case es256 = "ES256"
    case rs256 = "RS256"

    func matches(_ kind: VerificationKey.Kind) -> Bool {
        switch (self, kind) {
        case (.es256, .ecP256), (.rs256, .rsa): return true
        default: return false
        }
    }
}

/// Verifies signatures. Not thread-safe: each thread (event loop, command) owns one, while the
/// keys and the SHA-256 method are shared.
///
/// `EVP_DigestVerifyInit` fetches the signature algorithm and builds an operation context on
/// every call (~8 µs, and a global lock in OpenSSL 3.0). So each key gets one initialised
/// context per thread, made once, and every verification copies it (`EVP_MD_CTX_copy_ex`).
final class SignatureVerifier {
    /// An initialised verification context for one key; holds the key so it outlives the context.
    private final class Template {
        let context: OpaquePointer
        let key: VerificationKey

        init?(key: VerificationKey) {
            guard let context = EVP_MD_CTX_new() else { return nil }
            guard EVP_DigestVerifyInit(context, nil, MessageDigest.sha256.pointer, nil, key.pkey) == 1 else {
                ERR_clear_error()
                EVP_MD_CTX_free(context)
                return nil
            }
            // Each copy is finalised once: without this flag EVP_DigestVerifyFinal duplicates the
            // operation context again (so a caller could go on updating), on every verification.
            EVP_MD_CTX_set_flags(context, EVP_MD_CTX_FLAG_FINALISE)
            self.context = context
            self.key = key
        }

        deinit { EVP_MD_CTX_free(context) }
    }

    /// Templates by key; bounded, since key sets rotate (old keys fall out when it fills up).
    private var templates: [ObjectIdentifier: Template] = [:]
    private static let maximumTemplates = 64
    private let context: OpaquePointer

    init() {
        guard let context = EVP_MD_CTX_new() else { fatalError("EVP_MD_CTX_new: out of memory") }
        self.context = context
    }

    deinit { EVP_MD_CTX_free(context) }

    /// True when `signature` is a valid `algorithm` signature of `message` under `key`.
    func verify(
        _ algorithm: JWSAlgorithm, signature: UnsafeRawBufferPointer, message: UnsafeRawBufferPointer,
        key: VerificationKey
    ) -> Bool {
        guard algorithm.matches(key.kind), signature.count == key.signatureLength else { return false }
        switch algorithm {
        case .es256:
            guard let der = ECDSASignature.der(fromRawRS: signature) else { return false }
            return der.withUnsafeBytes { digestVerify(signature: $0, message: message, key: key) }
        case .rs256:
            return digestVerify(signature: signature, message: message, key: key)
        }
    }

    private func digestVerify(
        signature: UnsafeRawBufferPointer, message: UnsafeRawBufferPointer, key: VerificationKey
    ) -> Bool {
        guard let template = template(for: key), EVP_MD_CTX_copy_ex(context, template.context) == 1 else {
            ERR_clear_error()
            return false
        }
        let result = EVP_DigestVerify(
            context, signature.baseAddress?.assumingMemoryBound(to: UInt8.self), signature.count, message.baseAddress,
            message.count)
        if result != 1 { ERR_clear_error() }
        return result == 1
    }

    private func template(for key: VerificationKey) -> Template? {
        if let template = templates[ObjectIdentifier(key)] { return template }
        if templates.count >= Self.maximumTemplates { templates.removeAll() }
        let template = Template(key: key)
        templates[ObjectIdentifier(key)] = template
        return template
    }
}

/// ECDSA P-256 signatures as JWS carries them (RFC 7518 §3.4): exactly 64 bytes, r‖s.
enum ECDSASignature {
    /// The P-256 group order n, big-endian.
    static let groupOrder: [UInt8] = [
        0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        0xBC, 0xE6, 0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x51,
    ]

    /// True when the big-endian 32-byte scalar is in 1..<n (CVE-2022-21449: r = s = 0 must fail
    /// before any curve arithmetic).
    static func isValidScalar(_ bytes: some Collection<UInt8>) -> Bool {
        guard bytes.contains(where: { $0 != 0 }) else { return false }
        return bytes.lexicographicallyPrecedes(groupOrder)
    }

    /// DER `ECDSA-Sig-Value` for a raw r‖s signature, built by OpenSSL itself (`ECDSA_SIG_set0` +
    /// `i2d_ECDSA_SIG`): hand-rolled DER gets minimal-integer encoding subtly wrong (openssl#17580).
    static func der(fromRawRS raw: UnsafeRawBufferPointer) -> [UInt8]? {
        guard raw.count == 64, isValidScalar(raw[0..<32]), isValidScalar(raw[32..<64]) else { return nil }
        guard let signature = ECDSA_SIG_new() else { return nil }
        defer { ECDSA_SIG_free(signature) }
        let bytes = raw.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let (r, s) = (BN_bin2bn(bytes, 32, nil), BN_bin2bn(bytes + 32, 32, nil))
        // ECDSA_SIG_set0 takes ownership of r and s only when it succeeds.
        guard let r, let s, ECDSA_SIG_set0(signature, r, s) == 1 else {
            BN_free(r)
            BN_free(s)
            ERR_clear_error()
            return nil
        }
        // SEQUENCE { INTEGER r, INTEGER s } with 32-byte scalars is at most 2 + 2 × (2 + 33) = 72
        // bytes, so one i2d call into a buffer of that size suffices (i2d is slow; do not call it twice).
        var der = [UInt8](repeating: 0, count: 72)
        let length = der.withUnsafeMutableBufferPointer { buffer -> Int32 in
            var cursor = buffer.baseAddress
            return i2d_ECDSA_SIG(signature, &cursor)
        }
        guard length > 0, length <= 72 else { return nil }
        der.removeLast(72 - Int(length))
        return der
    }

    /// Raw r‖s from a DER signature (what OpenSSL's signing returns), for `mint`.
    static func rawRS(fromDER der: [UInt8]) -> [UInt8]? {
        let parsed = der.withUnsafeBufferPointer { buffer -> OpaquePointer? in
            var cursor = buffer.baseAddress
            return d2i_ECDSA_SIG(nil, &cursor, buffer.count)
        }
        guard let parsed else { return nil }
        defer { ECDSA_SIG_free(parsed) }
        var raw = [UInt8](repeating: 0, count: 64)
        let ok = raw.withUnsafeMutableBufferPointer { buffer in
            BN_bn2binpad(ECDSA_SIG_get0_r(parsed), buffer.baseAddress, 32) == 32
                && BN_bn2binpad(ECDSA_SIG_get0_s(parsed), buffer.baseAddress! + 32, 32) == 32
        }
        return ok ? raw : nil
    }
}
