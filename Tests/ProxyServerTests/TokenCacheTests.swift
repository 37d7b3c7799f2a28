import Testing

@testable import IAPAuth
@testable import ProxyServer

@Suite("Token cache: bounded, generations, expiry")
struct TokenCacheTests {
    static let headers = IdentityHeaders.presets["oauth2-proxy"]!

    func identity(_ email: String) -> Identity {
        Identity(
            email: email, subject: "accounts.google.com:1", hostedDomain: nil, accessLevels: [], audience: "a",
            issuedAt: 0, expiresAt: 600, keyID: "k", claims: JSONObject([]))
    }

    /// Tokens share a long prefix, as real ones do (the same header, most of the payload).
    func token(_ n: Int) -> ArraySlice<UInt8> {
        ArraySlice(Array("eyJhbGciOiJFUzI1NiIsImtpZCI6IjAifQ.eyJhdWQiOiIvcHJvamVjdHMv-\(n).c2ln".utf8))
    }

    func insert(_ cache: TokenCache, _ n: Int, validUntil: Int64 = 1_000, generation: UInt64 = 1) {
        cache.insert(
            token(n), identity: identity("u\(n)@example.com"), headers: [], renderedFrom: Self.headers,
            validUntil: validUntil, generation: generation)
    }

    func lookup(_ cache: TokenCache, _ n: Int, now: Int64 = 100, generation: UInt64 = 1) -> String? {
        cache.lookup(token(n), now: now, generation: generation, headers: Self.headers)?.0.email
    }

    @Test("A verified token is found again, for its key-set generation and until it expires")
    func hitsGenerationAndExpiry() {
        let cache = TokenCache(capacity: 100)
        insert(cache, 1, validUntil: 500)
        #expect(lookup(cache, 1) == "u1@example.com")
        #expect(lookup(cache, 2) == nil)
        #expect(lookup(cache, 1, now: 500) == "u1@example.com")  // exp + leeway itself still counts
        #expect(lookup(cache, 1, now: 501) == nil)
        #expect(lookup(cache, 1) == nil, "an expired entry is dropped when seen")
        insert(cache, 3)
        #expect(lookup(cache, 3, generation: 2) == nil, "a new key set means verifying again")
        #expect(cache.hits == 2 && cache.misses == 4)
    }

    @Test("Many distinct tokens never hold more than the capacity; a token in use survives the turnover")
    func boundedAndKeepsTokensInUse() {
        let cache = TokenCache(capacity: 1_000)
        insert(cache, -1)
        for n in 0..<20_000 {
            insert(cache, n)
            #expect(cache.count <= 1_000)
            if n % 100 == 0 { #expect(lookup(cache, -1) == "u-1@example.com", "after \(n) others") }
        }
        #expect(lookup(cache, 19_999) != nil && lookup(cache, 0) == nil)
    }

    @Test("Capacity 0 caches nothing")
    func disabled() {
        let cache = TokenCache(capacity: 0)
        insert(cache, 1)
        #expect(lookup(cache, 1) == nil && cache.count == 0)
    }
}
