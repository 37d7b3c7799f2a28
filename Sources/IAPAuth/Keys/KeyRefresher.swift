#if canImport(Glibc)
import Glibc
#endif

/// Keeps a `KeyStore` filled from the key URL, on its own thread (never an event loop):
/// honours `Cache-Control: max-age` within bounds, refreshes ahead of expiry, retries with
/// backoff and jitter, keeps the last good set when a fetch fails, optionally persists the last
/// good set to a file, and refetches early — once, rate-limited — when a token names an unknown kid.
public final class KeyRefresher: Sendable {
    public struct Settings: Sendable {
        public var fetch: KeyFetcher.Settings
        public var policy = RefreshPolicy()
        /// Where to keep the last good set; read at start so a restart without network still works.
        public var cacheFile: String?

        public init(fetch: KeyFetcher.Settings) { self.fetch = fetch }
    }

    /// What happened, for logs and metrics.
    public enum Event: Sendable {
        case loadedCache(path: String, keyIDs: [String])
        case cacheUnusable(path: String, reason: String)
        case fetched(keyIDs: [String], changed: Bool, freshFor: Double, problems: [String])
        case fetchFailed(reason: String, failures: Int, retryIn: Double)
        case cacheWriteFailed(path: String)
    }

    /// Counters for readiness and metrics.
    public struct Status: Sendable {
        public var fetchSuccesses = 0
        public var fetchFailures = 0
        public var consecutiveFailures = 0
        public var lastError: String?
    }

    private struct State {
        var stopping = false
        var refetchWanted = false
        var nextScheduled = 0.0
        var lastAttempt = -Double.infinity
        var lastBody: [UInt8]?
        var status = Status()
    }

    public let store: KeyStore
    private let settings: Settings
    private let monitor = Monitor(State())
    private let onEvent: @Sendable (Event) -> Void
    private let thread = Locked<pthread_t?>(nil)

    /// Validates the URL now, so configuration errors surface before serving.
    public init(
        _ settings: Settings, store: KeyStore, onEvent: @escaping @Sendable (Event) -> Void = { _ in }
    ) throws(KeyFetchError) {
        if let problem = KeyFetcher.problem(withURL: settings.fetch.url) { throw KeyFetchError(problem) }
        self.settings = settings
        self.store = store
        self.onEvent = onEvent
    }

    /// Loads the cache file (if any) into the store, then starts fetching in the background.
    public func start() {
        KeyFetcher.initializeLibrary()
        if let path = settings.cacheFile { loadCache(path) }
        let handle = startThread { [self] in run() }
        thread.withLock { $0 = handle }
    }

    /// Stops the thread after any fetch in flight, and waits for it.
    public func stop() {
        monitor.withLock { $0.stopping = true }
        monitor.signal()
        if let handle = thread.withLock({ $0.take() }) { pthread_join(handle, nil) }
    }

    /// A token named a kid the current set lacks: fetch again soon. Requests are coalesced into
    /// one fetch, at most one per `unknownKidInterval`, however many arrive.
    public func requestRefetch() {
        let wasWanted = monitor.withLock { state in
            defer { state.refetchWanted = true }
            return state.refetchWanted
        }
        if !wasWanted { monitor.signal() }
    }

    public var status: Status { monitor.withLock { $0.status } }

    private func loadCache(_ path: String) {
        do {
            let keys = try KeyFile.load(path)
            store.publish(keys, at: wallClockSeconds())
            onEvent(.loadedCache(path: path, keyIDs: keys.keyIDs))
        } catch {
            onEvent(.cacheUnusable(path: path, reason: error.reason))
        }
    }

    private func run() {
        // The URL was validated in init, so creating the fetcher cannot fail on it.
        guard let fetcher = try? KeyFetcher(settings.fetch) else { return }
        let policy = settings.policy
        while true {
            let proceed = monitor.wait { state, deadline -> Bool? in
                if state.stopping { return false }
                let now = monotonicSeconds()
                if now >= state.nextScheduled { return true }
                deadline = state.nextScheduled
                if state.refetchWanted {
                    let allowed = state.lastAttempt + policy.unknownKidInterval
                    if now >= allowed { return true }
                    deadline = min(deadline, allowed)
                }
                return nil
            }
            guard proceed else { return }
            monitor.withLock { state in
                state.lastAttempt = monotonicSeconds()
                state.refetchWanted = false
            }
            fetchOnce(fetcher, policy: policy)
        }
    }

    private func fetchOnce(_ fetcher: KeyFetcher, policy: RefreshPolicy) {
        let outcome = fetcher.fetch().flatMap { response -> Result<(KeyFetchResponse, KeySet), KeyFetchError> in
            guard response.status == 200 else { return .failure(KeyFetchError("HTTP status \(response.status)")) }
            return Result { () throws(KeyImportError) in (response, try KeySet.parse(response.body)) }
                .mapError { KeyFetchError("unusable key set: \($0.reason)") }
        }
        switch outcome {
        case .success(let (response, keys)):
            let lifetime = policy.lifetime(maxAge: response.maxAge, age: response.age)
            let changed = monitor.withLock { state in
                defer {
                    state.lastBody = response.body
                    state.nextScheduled = monotonicSeconds() + policy.refreshDelay(lifetime: lifetime)
                    state.status.fetchSuccesses += 1
                    state.status.consecutiveFailures = 0
                    state.status.lastError = nil
                }
                return state.lastBody != response.body
            }
            // An identical body keeps its generation, so caches of verified tokens stay warm.
            if changed || store.current == nil {
                store.publish(keys, at: wallClockSeconds())
                if let path = settings.cacheFile, !KeyFile.writeAtomically(path, response.body) {
                    onEvent(.cacheWriteFailed(path: path))
                }
            }
            onEvent(.fetched(keyIDs: keys.keyIDs, changed: changed, freshFor: lifetime, problems: keys.problems))
        case .failure(let error):
            // The last good set stays published; only the schedule changes.
            let (failures, delay) = monitor.withLock { state in
                state.status.fetchFailures += 1
                state.status.consecutiveFailures += 1
                state.status.lastError = error.reason
                let delay = policy.retryDelay(
                    failures: state.status.consecutiveFailures, jitter: Double.random(in: -1...1))
                state.nextScheduled = monotonicSeconds() + delay
                return (state.status.consecutiveFailures, delay)
            }
            onEvent(.fetchFailed(reason: error.reason, failures: failures, retryIn: delay))
        }
    }
}
