import Foundation
import Synchronization
import Testing

@testable import IAPAuth

/// One `KeySet` (and so one `EVP_PKEY` per key) is shared by every event loop while each loop
/// owns its `Verifier`. This runs that arrangement from many threads at once; `make test-tsan`
/// runs it under ThreadSanitizer, and a wrong verdict here would show a data race in effect.
@Suite("Shared keys across threads")
struct SharedKeyTests {
    @Test("Eight threads verify with shared keys while the store publishes new generations")
    func concurrentVerification() throws {
        let first = try SigningKey.generateP256()
        let second = try SigningKey.generateP256()
        let store = KeyStore()
        store.publish(try TokenFactory.keySet(["a": first, "b": second]), at: 0)
        let now = wallClockSeconds()
        let tokens = try (0..<64).map { index in
            try TokenFactory.token(
                claims: TokenFactory.claims(now: now, email: "user\(index)@example.com"),
                key: index % 2 == 0 ? first : second, kid: index % 2 == 0 ? "a" : "b")
        }
        let forged = try TokenFactory.token(claims: TokenFactory.claims(now: now), key: second, kid: "a")
        let config = try VerifierConfig(audiences: [TokenFactory.audience])
        let wrong = Atomic<Int>(0)
        let republish = try TokenFactory.keySet(["a": first, "b": second])
        DispatchQueue.concurrentPerform(iterations: 8) { thread in
            let verifier = Verifier(config: config)
            for round in 0..<40 {
                if thread == 0 && round % 10 == 0 { store.publish(republish, at: now) }
                let token = tokens[(thread * 7 + round) % tokens.count]
                if !verifier.verify(token, keys: store.current, now: now).isSuccess { wrong.add(1, ordering: .relaxed) }
                if verifier.verify(forged, keys: store.current, now: now).isSuccess { wrong.add(1, ordering: .relaxed) }
            }
        }
        #expect(wrong.load(ordering: .relaxed) == 0)
    }
}
