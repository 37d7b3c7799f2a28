import IAPAuth
import Prometheus
import Synchronization

/// Prometheus metrics, served as text at `/metrics` on the admin listener.
///
/// Per-request counters and histograms are updated by the loops (atomics inside swift-prometheus's
/// counters, whose handles the loops cache, so a request costs no registry lookup; the latency
/// histograms are our own, see `LatencyHistogram`). Everything that is a state rather than an
/// event — connections, tunnels, the key set, the policy, the pools — is read when scraped.
public final class Metrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    let requestDuration: LatencyHistogram
    let upstreamDuration: LatencyHistogram
    let tokenCacheHits: Counter
    let tokenCacheMisses: Counter
    let upstreamConnectErrors: Counter
    let keyFetches: Counter
    let keyFetchFailures: Counter
    let policyReloads: Counter
    let policyReloadFailures: Counter
    private let policyLastReload: Gauge
    private let policyEntries: Gauge
    private let policyRoutes: Gauge
    private let keySetAge: Gauge
    private let keysLoaded: Gauge
    private let activeConnections: Gauge
    private let activeTunnels: Gauge
    private let upstreamPoolIdle: Gauge
    private let ready: Gauge
    /// Gauges named by kid, replaced when the key set changes.
    private let kidGauges = Locked<[String: Gauge]>([:])
    /// Counts kept by the loops themselves (relaxed atomics), read at scrape time.
    let tunnels = Atomic<Int>(0)
    let pooledUpstreams = Atomic<Int>(0)

    public init() {
        func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
            MetricNameDescriptor(namespace: "iap_proxy", metricName: metric, unitName: unit, helpText: help)
        }
        let latencyBuckets: [Duration] = [
            .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
            .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
            .seconds(1), .seconds(2.5), .seconds(5), .seconds(10), .seconds(30), .seconds(60),
        ]
        requestDuration = LatencyHistogram(
            name: "iap_proxy_request_duration_seconds", help: "From a complete request head to the end of the response.",
            buckets: latencyBuckets)
        upstreamDuration = LatencyHistogram(
            name: "iap_proxy_upstream_duration_seconds", help: "From sending a request upstream to its response head.",
            buckets: latencyBuckets)
        let cache = name("token_cache", "total", "Verified-token cache lookups: a hit skips signature verification.")
        tokenCacheHits = registry.makeCounter(descriptor: cache, labels: [("result", "hit")])
        tokenCacheMisses = registry.makeCounter(descriptor: cache, labels: [("result", "miss")])
        upstreamConnectErrors = registry.makeCounter(
            descriptor: name("upstream_connect_errors", "total", "Connections to the upstream that failed or timed out."))
        let fetches = name("key_fetches", "total", "Key set fetches by result.")
        keyFetches = registry.makeCounter(descriptor: fetches, labels: [("result", "success")])
        keyFetchFailures = registry.makeCounter(descriptor: fetches, labels: [("result", "failure")])
        let reloads = name("policy_reloads", "total", "Policy reloads by result; a failure keeps the previous policy.")
        policyReloads = registry.makeCounter(descriptor: reloads, labels: [("result", "success")])
        policyReloadFailures = registry.makeCounter(descriptor: reloads, labels: [("result", "failure")])
        policyLastReload = registry.makeGauge(
            descriptor: name("policy_last_success_timestamp", "seconds", "When the policy in force was loaded."))
        policyEntries = registry.makeGauge(descriptor: name("policy_entries", "", "Allow and deny entries in force."))
        policyRoutes = registry.makeGauge(descriptor: name("policy_routes", "", "Routes in force."))
        keySetAge = registry.makeGauge(
            descriptor: name("key_set_age", "seconds", "Since the key set in use was loaded; -1 before the first."))
        keysLoaded = registry.makeGauge(descriptor: name("keys", "", "Keys in the current key set."))
        activeConnections = registry.makeGauge(descriptor: name("client_connections", "", "Open client connections."))
        activeTunnels = registry.makeGauge(descriptor: name("websocket_tunnels", "", "Open WebSocket (upgrade) tunnels."))
        upstreamPoolIdle = registry.makeGauge(
            descriptor: name("upstream_pool_idle_connections", "", "Idle keep-alive connections to the upstream."))
        ready = registry.makeGauge(descriptor: name("ready", "", "1 when /readyz answers 200."))
    }

    // Built when used (MetricNameDescriptor is not Sendable, so it is not stored).
    private var requestsDescriptor: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "iap_proxy", metricName: "requests", unitName: "total",
            helpText: "Requests by decision (allow, deny, error), reason code, status class and route.")
    }

    private var kidDescriptor: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "iap_proxy", metricName: "key_info", unitName: "", helpText: "1 for each kid in the current key set.")
    }

    /// The counter for one combination of request labels (registered on first use).
    func requestCounter(_ labels: RequestLabels) -> Counter {
        registry.makeCounter(
            descriptor: requestsDescriptor,
            labels: [
                ("decision", labels.decision), ("reason", labels.reason), ("status_class", labels.statusClass),
                ("route", labels.route),
            ])
    }

    /// A successful policy load or reload.
    public func policyLoaded(_ policy: Policy, at seconds: Int64, reload: Bool) {
        if reload { policyReloads.increment() }
        policyLastReload.set(Double(seconds))
        policyEntries.set(Double(policy.entryCount))
        policyRoutes.set(Double(policy.routes.count))
    }

    public func policyReloadFailed() { policyReloadFailures.increment() }

    public func keyFetched(success: Bool) { (success ? keyFetches : keyFetchFailures).increment() }

    /// The exposition text, with the state gauges read now.
    func render(_ shared: SharedState, draining: Bool) -> [UInt8] {
        let now = wallClockSeconds()
        let keys = shared.keys.current
        keySetAge.set(keys == nil ? -1.0 : Double(now - shared.keys.publishedAt))
        keysLoaded.set(Double(keys?.keys.count ?? 0))
        activeConnections.set(Double(shared.liveConnections.load(ordering: .relaxed)))
        activeTunnels.set(Double(tunnels.load(ordering: .relaxed)))
        upstreamPoolIdle.set(Double(pooledUpstreams.load(ordering: .relaxed)))
        ready.set(keys != nil && shared.policy != nil && !draining ? 1.0 : 0.0)
        kidGauges.withLock { gauges in
            let kids = Set(keys?.keyIDs ?? [])
            for (kid, gauge) in gauges where !kids.contains(kid) {
                registry.unregisterGauge(gauge)
                gauges[kid] = nil
            }
            for kid in kids where gauges[kid] == nil {
                let gauge = registry.makeGauge(descriptor: kidDescriptor, labels: [("kid", kid)])
                gauge.set(1.0)
                gauges[kid] = gauge
            }
        }
        var text = registry.emitToBuffer()
        requestDuration.emit(into: &text)
        upstreamDuration.emit(into: &text)
        return text
    }
}

/// The labels of `iap_proxy_requests_total`; a loop keeps one counter handle per combination.
struct RequestLabels: Hashable {
    let decision: String
    let reason: String
    let statusClass: String
    let route: String

    /// `2xx` for 200 and so on, without formatting a string per request.
    static func statusClass(_ status: Int) -> String {
        switch status / 100 {
        case 1: "1xx"
        case 2: "2xx"
        case 3: "3xx"
        case 4: "4xx"
        case 5: "5xx"
        default: "\(status / 100)xx"
        }
    }
}
