// Verifications per second on one thread, each token different (full ECDSA, no cache):
// mint a pool of distinct tokens, then verify them round-robin for the given seconds.
// Usage: verify-bench [seconds]   (bench/verify.sh runs it beside `openssl speed`)
//
// Beside the tokens it times OpenSSL's own verify the way `openssl speed ecdsap256` does
// (`EVP_PKEY_verify` on a 20-byte buffer, one context made once), in alternating batches of 1000:
// each ~0.2 s pair shares the machine's state, so their ratio does not carry the other tenants'
// noise that separate runs do. Time is this thread's CPU time, so time stolen by other tenants
// counts against neither.
// Prints on stdout: token verifications per CPU second, OpenSSL verifies per CPU second.
import COpenSSL
import IAPAuth

#if canImport(Glibc)
import Glibc
#endif

func threadCPUSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

/// `openssl speed`'s verify loop, with its own P-256 key.
final class OpenSSLSpeedVerify {
    private let context: OpaquePointer
    private let buffer = [UInt8](repeating: 0x5A, count: 20)
    private var signature = [UInt8](repeating: 0, count: 80)
    private var signatureLength = 80

    init() {
        var key: OpaquePointer?
        let generator = EVP_PKEY_CTX_new_from_name(nil, "EC", nil)
        guard EVP_PKEY_keygen_init(generator) == 1, EVP_PKEY_CTX_set_group_name(generator, "P-256") == 1,
            EVP_PKEY_generate(generator, &key) == 1, let key
        else { fatalError("P-256 key generation failed") }
        EVP_PKEY_CTX_free(generator)
        let signer = EVP_PKEY_CTX_new(key, nil)
        guard EVP_PKEY_sign_init(signer) == 1,
            EVP_PKEY_sign(signer, &signature, &signatureLength, buffer, buffer.count) == 1
        else { fatalError("EVP_PKEY_sign failed") }
        EVP_PKEY_CTX_free(signer)
        guard let context = EVP_PKEY_CTX_new(key, nil), EVP_PKEY_verify_init(context) == 1 else {
            fatalError("EVP_PKEY_verify_init failed")
        }
        EVP_PKEY_free(key)  // the context holds its own reference
        self.context = context
    }

    func verify() -> Bool { EVP_PKEY_verify(context, signature, signatureLength, buffer, buffer.count) == 1 }
}

let duration = CommandLine.arguments.count > 1 ? Double(CommandLine.arguments[1]) ?? 3 : 3
let key = try SigningKey.generateP256()
let jwks = JSONValue.object(JSONObject([.init(name: "keys", value: .array([key.publicJWK(kid: "bench")]))]))
let keys = try KeySet.parse(Array(jwks.serialized().utf8))
let audience = "/projects/123456789/global/backendServices/987654321"
let now = wallClockSeconds()
let header = JSONValue.object(
    JSONObject([.init(name: "alg", value: .string("ES256")), .init(name: "typ", value: .string("JWT")),
                .init(name: "kid", value: .string("bench"))]))
// IAP-sized claims (≈ 400 bytes of token), each token distinct.
let tokens: [[UInt8]] = try (0..<1000).map { index in
    let claims = JSONValue.object(
        JSONObject([
            .init(name: "aud", value: .string(audience)), .init(name: "email", value: .string("user\(index)@example.com")),
            .init(name: "exp", value: .number(String(now + 600))), .init(name: "hd", value: .string("example.com")),
            .init(name: "iat", value: .number(String(now))), .init(name: "iss", value: .string(VerifierConfig.iapIssuer)),
            .init(name: "sub", value: .string("accounts.google.com:10000000000000000\(index)")),
        ]))
    return Array(try key.compactJWS(header: header, claims: claims).utf8)
}
let verifier = Verifier(config: try VerifierConfig(audiences: [audience]))

let reference = OpenSSLSpeedVerify()
let batch = 1000  // ~0.1 s: a switch's cache warm-up is lost in it, and noise still hits both alike
var verified = 0
var referenceVerified = 0
var cpu = 0.0
var referenceCPU = 0.0
var next = 0
while cpu + referenceCPU < 2 * duration {
    var start = threadCPUSeconds()
    for _ in 0..<batch {
        let ok = tokens[next].withUnsafeBytes { verifier.verify($0, keys: keys, now: now) }
        guard case .success = ok else { fatalError("a token failed verification: \(ok)") }
        next = (next + 1) % tokens.count
    }
    var end = threadCPUSeconds()
    cpu += end - start
    verified += batch
    start = end
    for _ in 0..<batch where !reference.verify() { fatalError("EVP_PKEY_verify failed") }
    end = threadCPUSeconds()
    referenceCPU += end - start
    referenceVerified += batch
}
print(Int(Double(verified) / cpu), Int(Double(referenceVerified) / referenceCPU))
