import Foundation
import Synchronization
import Testing

@testable import IAPAuth

/// The key source against a real HTTP server on loopback: max-age, rotation on an unknown kid,
/// one fetch for a burst of unknown kids, and the last good set kept on every kind of failure.
@Suite("Key source", .serialized)
struct KeySourceTests {
    let first = try! SigningKey.generateP256()
    let second = try! SigningKey.generateP256()

    func jwks(_ keys: [String: SigningKey]) -> String {
        JSONValue.object(
            JSONObject([.init(name: "keys", value: .array(keys.sorted { $0.key < $1.key }.map { $0.value.publicJWK(kid: $0.key) }))])
        ).serialized()
    }

    /// A refresher with test-sized timings: everything happens within a second or two.
    func refresher(
        _ server: KeyServer, cacheFile: String? = nil, configure: (inout RefreshPolicy) -> Void = { _ in },
        events: EventLog? = nil
    ) throws -> KeyRefresher {
        var fetch = KeyFetcher.Settings(url: server.url)
        fetch.connectTimeoutMilliseconds = 500
        fetch.totalTimeoutMilliseconds = 500
        fetch.maximumBytes = 64 * 1024
        var settings = KeyRefresher.Settings(fetch: fetch)
        settings.policy.minimumLifetime = 0.5
        settings.policy.retryBase = 0.1
        settings.policy.retryMaximum = 0.2
        settings.policy.unknownKidInterval = 0.5
        configure(&settings.policy)
        settings.cacheFile = cacheFile
        return try KeyRefresher(settings, store: KeyStore()) { event in events?.append(event) }
    }

    func waitUntil(_ seconds: Double = 3, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            usleep(10_000)
        }
        return condition()
    }

    @Test("The first fetch publishes the set; an identical refetch keeps its generation")
    func initialFetch() throws {
        let server = try KeyServer(KeyServer.jwks(jwks(["k1": first]), maxAge: 1))
        defer { server.stop() }
        let source = try refresher(server) { $0.refreshAt = 0.5 }
        source.start()
        defer { source.stop() }
        #expect(waitUntil { source.store.current?.keyIDs == ["k1"] })
        let generation = source.store.current!.generation
        // max-age=1 with refreshAt 0.5: a refetch about every 0.5 s.
        #expect(waitUntil { source.status.fetchSuccesses >= 3 })
        #expect(server.requestCount >= 3)
        #expect(source.store.current!.generation == generation)
    }

    @Test("max-age is honoured: a long max-age means no refetch")
    func maxAgeHonoured() throws {
        let server = try KeyServer(KeyServer.jwks(jwks(["k1": first]), maxAge: 3600))
        defer { server.stop() }
        let source = try refresher(server)
        source.start()
        defer { source.stop() }
        #expect(waitUntil { source.store.current != nil })
        usleep(1_200_000)
        #expect(server.requestCount == 1)
    }

    @Test("Rotation: an unknown kid triggers a refetch that picks up the new key")
    func rotation() throws {
        let server = try KeyServer(KeyServer.jwks(jwks(["k1": first])))
        defer { server.stop() }
        let source = try refresher(server)
        source.start()
        defer { source.stop() }
        #expect(waitUntil { source.store.current?.keyIDs == ["k1"] })
        server.set(KeyServer.jwks(jwks(["k1": first, "k2": second])))
        source.requestRefetch()
        #expect(waitUntil { source.store.current?.keyIDs == ["k1", "k2"] })
        #expect(server.requestCount == 2)
        // The new key verifies tokens.
        let now = wallClockSeconds()
        let token = try TokenFactory.token(claims: TokenFactory.claims(now: now), key: second, kid: "k2")
        let verifier = Verifier(config: try VerifierConfig(audiences: [TokenFactory.audience]))
        #expect(verifier.verify(token, keys: source.store.current, now: now).isSuccess)
    }

    @Test("A burst of unknown kids from many threads costs one fetch per interval")
    func burstOfUnknownKids() throws {
        let server = try KeyServer(KeyServer.jwks(jwks(["k1": first])))
        defer { server.stop() }
        let source = try refresher(server) { $0.unknownKidInterval = 1.0 }
        source.start()
        defer { source.stop() }
        #expect(waitUntil { source.store.current != nil })
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            for _ in 0..<1000 { source.requestRefetch() }
        }
        #expect(waitUntil { server.requestCount == 2 })
        usleep(700_000)
        #expect(server.requestCount == 2)
    }

    @Test(
        "The last good set is kept on 500, timeout, reset, garbage, an unusable set and oversized bodies",
        arguments: [
            KeyServer.Behaviour.reply(status: 500, headers: [], body: Array("oops".utf8)),
            .stall(seconds: 1.5),
            .reset,
            .reply(status: 200, headers: [], body: Array("<html>not json</html>".utf8)),
            .reply(status: 200, headers: [], body: Array(#"{"keys":[]}"#.utf8)),
            .reply(status: 200, headers: [], body: [UInt8](repeating: 0x20, count: 100 * 1024)),
            .chunked(count: 100 * 1024),
        ])
    func lastGoodSetKept(_ failure: KeyServer.Behaviour) throws {
        let server = try KeyServer(KeyServer.jwks(jwks(["k1": first])))
        defer { server.stop() }
        let events = EventLog()
        let source = try refresher(server, events: events)
        source.start()
        defer { source.stop() }
        #expect(waitUntil { source.store.current?.keyIDs == ["k1"] })
        let good = source.store.current!
        server.set(failure)
        source.requestRefetch()
        #expect(waitUntil { source.status.fetchFailures >= 1 })
        #expect(source.store.current === good)
        // It keeps retrying with backoff, and recovers when the server does.
        server.set(KeyServer.jwks(jwks(["k2": second])))
        #expect(waitUntil(4) { source.store.current?.keyIDs == ["k2"] })
        let reasons = events.all.compactMap { event -> String? in
            if case .fetchFailed(let reason, _, _) = event { return reason }
            return nil
        }
        #expect(!reasons.isEmpty)
    }

    @Test("The last good set is persisted and used at the next start without network")
    func cacheFile() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("iap-keys-\(UUID()).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let server = try KeyServer(KeyServer.jwks(jwks(["k1": first])))
        let source = try refresher(server, cacheFile: path)
        source.start()
        #expect(waitUntil { FileManager.default.fileExists(atPath: path) })
        source.stop()
        server.stop()
        // The server is gone: the cached set is loaded synchronously by start().
        let offline = try KeyServer(.reset)
        defer { offline.stop() }
        let restarted = try refresher(offline, cacheFile: path)
        restarted.start()
        defer { restarted.stop() }
        #expect(restarted.store.current?.keyIDs == ["k1"])
    }

    @Test("Key URLs: https anywhere, plain http only on loopback, never credentials")
    func urlRules() {
        for allowed in [
            "https://www.gstatic.com/iap/verify/public_key-jwk", "http://127.0.0.1:8080/k", "http://localhost/k",
            "http://[::1]:9/k", "http://127.3.2.1/k",
        ] {
            #expect(KeyFetcher.problem(withURL: allowed) == nil, "\(allowed)")
        }
        for refused in [
            "http://www.gstatic.com/iap/verify/public_key-jwk", "ftp://127.0.0.1/k", "file:///etc/keys",
            "http://127.0.0.1@evil.example/k", "https://user:pw@www.gstatic.com/k", "http://127.0.0.1.evil.example/k",
            "https:///k", "https://www.gstatic.com/k k", "gopher://localhost/",
        ] {
            #expect(KeyFetcher.problem(withURL: refused) != nil, "\(refused)")
        }
    }

    @Test("Cache-Control: max-age read, Age subtracted, no-store and no-cache fall back to the minimum")
    func cacheControl() {
        #expect(CacheControl.maxAge("public, max-age=21600") == 21600)
        #expect(CacheControl.maxAge("max-age=\"60\", must-revalidate") == 60)
        #expect(CacheControl.maxAge("no-store, max-age=60") == nil)
        #expect(CacheControl.maxAge("no-cache") == nil)
        #expect(CacheControl.maxAge("max-age=-5") == nil)
        #expect(CacheControl.maxAge("max-age=abc") == nil)
        var policy = RefreshPolicy()
        #expect(policy.lifetime(maxAge: 21600, age: 600) == 21000)
        #expect(policy.lifetime(maxAge: 10, age: 0) == 300)
        #expect(policy.lifetime(maxAge: 10_000_000, age: 0) == 86400)
        #expect(policy.lifetime(maxAge: nil, age: 0) == 300)
        #expect(policy.refreshDelay(lifetime: 1000) == 800)
        policy.retryBase = 1
        policy.retryMaximum = 60
        #expect(policy.retryDelay(failures: 1, jitter: 0) == 1)
        #expect(policy.retryDelay(failures: 4, jitter: 0) == 8)
        #expect(policy.retryDelay(failures: 30, jitter: 0) == 60)
        #expect(policy.retryDelay(failures: 30, jitter: 1) == 72)
        #expect(policy.retryDelay(failures: 30, jitter: -1) == 48)
    }

    @Test("The fetcher reports max-age, Age and the body; the size cap holds without Content-Length")
    func fetcherDirect() throws {
        let server = try KeyServer(.reply(status: 200, headers: ["Cache-Control: max-age=120", "Age: 20"], body: Array("{}".utf8)))
        defer { server.stop() }
        var settings = KeyFetcher.Settings(url: server.url)
        settings.maximumBytes = 1000
        let fetcher = try KeyFetcher(settings)
        let response = try fetcher.fetch().get()
        #expect(response.status == 200 && response.maxAge == 120 && response.age == 20 && response.body == Array("{}".utf8))
        server.set(.chunked(count: 5000))
        #expect(throws: KeyFetchError.self) { try fetcher.fetch().get() }
        server.set(.reply(status: 200, headers: [], body: [UInt8](repeating: 0x20, count: 5000)))
        #expect(throws: KeyFetchError.self) { try fetcher.fetch().get() }
    }
}

/// Refresher events collected across threads.
final class EventLog: Sendable {
    private let events = Mutex<[KeyRefresher.Event]>([])
    func append(_ event: KeyRefresher.Event) { events.withLock { $0.append(event) } }
    var all: [KeyRefresher.Event] { events.withLock { $0 } }
}
