// Verifications per second on one thread, each token different (full ECDSA, no cache):
// mint a pool of distinct tokens, then verify them round-robin for the given seconds.
// Usage: verify-bench [seconds]   (bench/verify.sh runs it beside `openssl speed`)
// Prints verifications per second of user CPU time, the divisor `openssl speed` uses (unless given
// -elapsed), so time stolen by other tenants counts against neither; then, on stderr, per
// wall-clock second.
import IAPAuth

#if canImport(Glibc)
import Glibc
#endif

func seconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

func userCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
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

var verified = 0
var failed = 0
let start = seconds()
let startCPU = userCPUSeconds()
var elapsed = 0.0
while elapsed < duration {
    for token in tokens {
        let ok = token.withUnsafeBytes { verifier.verify($0, keys: keys, now: now) }
        if case .success = ok { verified += 1 } else { failed += 1 }
    }
    elapsed = seconds() - start
}
precondition(failed == 0, "\(failed) verifications failed")
print(Int(Double(verified) / (userCPUSeconds() - startCPU)))
let wall = "\(Int(Double(verified) / elapsed)) verify/s of wall-clock time\n"
_ = wall.withCString { write(2, $0, strlen($0)) }
