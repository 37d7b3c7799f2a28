import IAPAuth
import Synchronization

/// What every loop reads and background threads replace: immutable snapshots behind locks that
/// are held only to copy a reference.
public final class SharedState: Sendable {
    public let config: ServerConfig
    public let keys: KeyStore
    /// Present when keys come from a URL: asked to refetch when a token names an unknown kid.
    public let refresher: KeyRefresher?
    private let allowlistSnapshot = Mutex<Allowlist?>(nil)
    let accessLog = AccessLog()
    let liveConnections = Atomic<Int>(0)

    public init(config: ServerConfig, keys: KeyStore, refresher: KeyRefresher?) {
        self.config = config
        self.keys = keys
        self.refresher = refresher
    }

    public var allowlist: Allowlist? { allowlistSnapshot.withLock { $0 } }

    /// Installs a new allowlist (validated by the caller); loops see it on their next request.
    public func replaceAllowlist(_ allowlist: Allowlist) { allowlistSnapshot.withLock { $0 = allowlist } }
}
