import HTTP1
import IAPAuth

/// Everything `serve` decides at start; immutable and shared by every loop.
public struct ServerConfig: Sendable {
    public var listen: SocketAddress
    public var upstream: SocketAddress
    /// `/healthz` and `/readyz`; nil disables the admin listener.
    public var admin: SocketAddress?
    public var workers: Int
    public var verifier: VerifierConfig
    public var identityHeaders: IdentityHeaders
    public var timeouts = Timeouts()
    public var limits = Limits()
    public var forwardedProto = ForwardedProto.auto
    /// Adds `Via: 1.1 iap-proxy` to requests and responses.
    public var addVia = false
    /// Passes the verified assertion on; off where the upstream routes to code users control
    /// (JupyterHub's single-user servers), which could replay a visitor's token.
    public var forwardAssertion = true
    /// One line per request on stdout.
    public var accessLog = true
    /// JSON or key=value text, for the access log and the events on stderr.
    public var logFormat = LogFormat.json
    /// Log a digest of each email instead of the address (privacy-sensitive sites).
    public var hashEmails = false
    /// Answers the caller's verified identity (on authenticated routes); nil disables.
    public var whoamiPath: String? = "/.iap-proxy/whoami"

    public init(
        listen: SocketAddress, upstream: SocketAddress, admin: SocketAddress?, workers: Int, verifier: VerifierConfig,
        identityHeaders: IdentityHeaders
    ) {
        self.listen = listen
        self.upstream = upstream
        self.admin = admin
        self.workers = workers
        self.verifier = verifier
        self.identityHeaders = identityHeaders
    }

    /// All durations in milliseconds.
    public struct Timeouts: Sendable {
        /// A request head must arrive within this (slowloris): 408.
        public var head: Int64 = 15_000
        /// An idle keep-alive client connection is closed after this.
        public var idle: Int64 = 60_000
        /// Longest pause while receiving a request body, or while a client accepts no bytes.
        public var client: Int64 = 60_000
        public var upstreamConnect: Int64 = 5_000
        /// Longest wait for the upstream's response head, or between its body bytes: 504.
        public var upstreamResponse: Int64 = 60_000
        /// Pooled upstream connections idle longer than this are closed.
        public var upstreamIdle: Int64 = 30_000
        /// A WebSocket (or other upgraded) tunnel with no traffic either way is closed after this.
        public var tunnelIdle: Int64 = 3_600_000
        /// On SIGTERM, in-flight requests get this long to finish.
        public var drain: Int64 = 30_000
        /// A token naming an unknown kid waits this long for the refetched key set.
        public var keyWait: Int64 = 5_000

        public init() {}
    }

    public struct Limits: Sendable {
        public var http = HTTPLimits()
        /// Client connections across all loops; beyond it the listeners stop accepting.
        public var maximumConnections = 10_000
        /// Bytes queued towards one peer before reading from the other side pauses.
        public var writeHighWater = 256 * 1024
        /// Verified tokens cached per loop.
        public var tokenCacheEntries = 10_000
        /// Idle upstream connections kept per loop. Idle ones hold no buffers, so keep enough for
        /// the concurrency the proxy sees: a small pool makes every burst reconnect.
        public var upstreamPoolSize = 1024

        public init() {}
    }

    /// What `X-Forwarded-Proto` tells the app.
    public enum ForwardedProto: String, Sendable, CaseIterable {
        /// Keep the load balancer's `http`/`https` (GCLB sets it), else `http`.
        case auto
        case http
        case https
    }
}
