import IAPAuth
import Synchronization

/// What every loop reads and background threads replace: immutable snapshots behind locks that
/// are held only to copy a reference.
public final class SharedState: Sendable {
    public let config: ServerConfig
    public let keys: KeyStore
    /// Present when keys come from a URL: asked to refetch when a token names an unknown kid.
    public let refresher: KeyRefresher?
    private let policySnapshot = Locked<Policy?>(nil)
    let accessLog = AccessLog()
    let liveConnections = Atomic<Int>(0)
    /// When each mismatched audience was last logged (milliseconds), across loops.
    private let loggedAudiences = Locked<[String: Int64]>([:])
    public let metrics: Metrics

    public init(config: ServerConfig, keys: KeyStore, refresher: KeyRefresher?, metrics: Metrics = Metrics()) {
        self.config = config
        self.keys = keys
        self.refresher = refresher
        self.metrics = metrics
    }

    /// The routes and access lists in force; nil until the first policy loads.
    public var policy: Policy? { policySnapshot.withLock { $0 } }

    /// Installs a new policy (validated whole by the caller); loops use it from their next request.
    public func replacePolicy(_ policy: Policy) { policySnapshot.withLock { $0 = policy } }

    /// Whether to log this mismatched audience now: once a minute each, whichever loop sees it.
    func shouldLogAudience(_ audience: String, now: Int64) -> Bool {
        loggedAudiences.withLock { logged in
            if let last = logged[audience], now - last < 60_000 { return false }
            if logged.count >= 64 { logged.removeAll() }
            logged[audience] = now
            return true
        }
    }
}
