import Glibc
import HTTP1
import IAPAuth
import Prometheus

/// One event-loop thread and everything it owns: its listener (SO_REUSEPORT), its connections,
/// its upstream pool, its verifier and token cache. Nothing here is touched by another thread;
/// other threads reach a worker only through its loop's mailbox.
final class Worker {
    let index: Int
    let shared: SharedState
    let loop: EventLoop
    private let verifier: Verifier
    private let tokenCache: TokenCache
    private let identityMatcher: IdentityHeaderMatcher
    private var listener: Listener?
    private var adminListener: Listener?
    private var pool: [UpstreamConnection] = []
    /// Connections whose request waits for an unknown kid's refetch; each leaves on new keys, its
    /// key-wait timeout or its close (a random-kid flood must not pile up closed connections).
    private var parked: [ObjectIdentifier: ClientConnection] = [:]
    private(set) var clientCount = 0
    private(set) var draining = false
    private var logBuffer: [UInt8] = []
    private var logClock = LogClock()
    /// Counter handles by label combination: a request costs a dictionary lookup, not a registry one.
    private var requestCounters: [RequestLabels: Counter] = [:]
    private var lastRequestCounter: (labels: RequestLabels, counter: Counter)?
    private var emailDigests: [String: String] = [:]
    private var headScratch: [UInt8] = []
    private var requestCounter: UInt64 = 0
    /// Clients whose complete request waits to go upstream at the end of this batch.
    private var pendingUpstreamFlushes: [ClientConnection] = []
    /// Clients whose finished answer waits to go out at the end of this batch.
    private var pendingAnswers: [ClientConnection] = []
    private let requestPrefix: String

    init(index: Int, shared: SharedState) throws(IOError) {
        self.index = index
        self.shared = shared
        loop = try EventLoop()
        verifier = Verifier(config: shared.config.verifier)
        tokenCache = TokenCache(capacity: shared.config.limits.tokenCacheEntries)
        identityMatcher = IdentityHeaderMatcher()
        requestPrefix = String(UInt32.random(in: .min ... .max), radix: 16) + String(index, radix: 16)
        loop.sweepInterval = min(250, max(10, Self.shortestTimeout(shared.config.timeouts) / 4))
        loop.onMessage = { [unowned self] message in receive(message) }
        loop.onIterationEnd = { [unowned self] in
            flushPending()
            flushLog()
        }
    }

    /// Opens this worker's listeners; on failure nothing was opened.
    func listen(on address: SocketAddress) throws(IOError) {
        listener = try Listener(
            address: address, loop: loop, mayAccept: { [unowned self] in mayAccept }
        ) { [unowned self] fd, peer in accepted(fd, peer) }
        if index == 0, let admin = shared.config.admin {
            adminListener = try Listener(address: admin, loop: loop) { [unowned self] fd, _ in
                AdminConnection.start(fd: fd, worker: self)
            }
        }
    }

    var listeningPort: UInt16? { listener?.port }
    var adminPort: UInt16? { adminListener?.port }

    /// Runs the loop on the calling thread until stopped.
    func run() { loop.run() }

    private static func shortestTimeout(_ timeouts: ServerConfig.Timeouts) -> Int64 {
        [timeouts.head, timeouts.idle, timeouts.client, timeouts.upstreamConnect, timeouts.upstreamResponse,
         timeouts.keyWait].min()!
    }

    // MARK: Connections

    private func accepted(_ fd: Int32, _ peer: SocketAddress) {
        let connection = ClientConnection(fd: fd, peer: peer, worker: self)
        do {
            connection.token = try loop.register(fd, interest: Readiness.readable, handler: connection)
        } catch {
            close(fd)
            return
        }
        clientCount += 1
        shared.liveConnections.add(1, ordering: .relaxed)
    }

    /// True while the proxy-wide connection cap allows another client.
    var mayAccept: Bool {
        !draining && shared.liveConnections.load(ordering: .relaxed) < shared.config.limits.maximumConnections
    }

    func connectionClosed(_ connection: ClientConnection) {
        clientCount -= 1
        shared.liveConnections.subtract(1, ordering: .relaxed)
        listener?.resumeIfPossible()
        if draining && clientCount == 0 { finishDrain() }
    }

    func park(_ connection: ClientConnection) { parked[ObjectIdentifier(connection)] = connection }
    func unpark(_ connection: ClientConnection) { parked[ObjectIdentifier(connection)] = nil }

    // MARK: Messages from other threads

    private func receive(_ message: EventLoop.Message) {
        switch message {
        case .keysChanged:
            let waiting = parked.values
            parked = [:]
            for connection in waiting { connection.keysChanged() }
        case .drain:
            startDrain()
        case .stop:
            loop.stop()
        }
    }

    /// Stops accepting; idle connections close now, busy ones after their current response.
    private func startDrain() {
        guard !draining else { return }
        draining = true
        listener?.close()
        listener = nil
        for connection in loop.handlers(of: ClientConnection.self) where connection.isIdle { connection.close() }
        if clientCount == 0 { finishDrain() }
    }

    private func finishDrain() {
        adminListener?.close()
        adminListener = nil
        for upstream in pool { upstream.close() }
        shared.metrics.pooledUpstreams.subtract(pool.count, ordering: .relaxed)
        pool.removeAll()
        flushLog()
        loop.stop()
    }

    // MARK: Admission

    enum Admission {
        /// Forward to the app: `identity` is nil on `auth: none` routes. `target` is the
        /// normalized request target the route was chosen by.
        case allow(Identity?, route: Route, reason: String, headers: [ExtraField], target: String?)
        /// Answer 200 with this body without calling the app (health checks).
        case respondLocally(String, route: Route)
        /// The whoami path: answer the caller's verified identity and what admitted it.
        case whoami(Identity, route: Route, reason: String)
        /// `email`: who was refused, when the token verified (the log says who and why).
        case deny(status: Int, reason: String, detail: String, route: Route? = nil, email: String? = nil)
        case waitForKeys
    }

    /// DESIGN's gate: the route for the normalized path (none: denied), then — unless the route
    /// needs no authentication — exactly one assertion, verified (or found in the token cache)
    /// against the current key set, then the route's access list.
    func admit(_ head: RequestHead, mayWaitForKeys: Bool) -> Admission {
        let path: RequestPath
        switch RequestPath.normalize(head.bytes[head.target]) {
        case .success(let normalized): path = normalized
        case .failure(let failure): return .deny(status: 400, reason: failure.rawValue, detail: head.targetString)
        }
        guard let policy = shared.policy else { return .deny(status: 503, reason: "policy-unavailable", detail: "") }
        guard let route = policy.route(host: head.hostString, path: path, method: head.methodString) else {
            return .deny(status: 403, reason: "no-route", detail: path.path)
        }
        if path.hasEncodedSlash && !route.allowEncodedSlashes {
            return .deny(status: 400, reason: "path-encoded-slash", detail: path.path, route: route)
        }
        if let body = route.localResponse { return .respondLocally(body, route: route) }
        let target = path.path == "*" ? nil : path.target
        guard case .verified = route.auth else {
            return .allow(nil, route: route, reason: "no-auth", headers: [], target: target)
        }
        var token: ArraySlice<UInt8>?
        for field in head.fields where head.nameEquals(field, "x-goog-iap-jwt-assertion") {
            guard token == nil else { return .deny(status: 401, reason: RejectionReason.duplicateAssertion.rawValue, detail: "", route: route) }
            token = head.value(of: field)
        }
        guard let token else { return .deny(status: 401, reason: RejectionReason.missingAssertion.rawValue, detail: "", route: route) }
        guard let keys = shared.keys.current else {
            return .deny(status: 503, reason: RejectionReason.keysUnavailable.rawValue, detail: "", route: route)
        }
        let now = wallClockSeconds()
        let identity: Identity
        var headers: [ExtraField]
        if let cached = tokenCache.lookup(token, now: now, generation: keys.generation, headers: route.identityHeaders) {
            (identity, headers) = cached
            shared.metrics.tokenCacheHits.increment()
        } else {
            shared.metrics.tokenCacheMisses.increment()
            switch token.withUnsafeBytes({ verifier.verify($0, keys: keys, now: now) }) {
            case .success(let verified):
                identity = verified
                headers = Self.render(route.identityHeaders, verified)
                tokenCache.insert(
                    token, identity: verified, headers: headers, renderedFrom: route.identityHeaders,
                    validUntil: verified.expiresAt + shared.config.verifier.leeway, generation: keys.generation)
            case .failure(let rejection):
                if rejection.reason == .unknownKid, mayWaitForKeys, let refresher = shared.refresher {
                    refresher.requestRefetch()
                    return .waitForKeys
                }
                if rejection.reason == .wrongAudience { learnAudience(rejection.detail) }
                return .deny(
                    status: rejection.reason == .keysUnavailable ? 503 : 401, reason: rejection.reason.rawValue,
                    detail: rejection.detail, route: route)
            }
        }
        let decision = Policy.decide(route, identity)
        if !decision.isAllowed && !route.reportOnly {
            return .deny(status: 403, reason: decision.reason, detail: identity.email, route: route, email: identity.email)
        }
        // Only to callers the route admits: it shows their own claims and the rule that let them in.
        if let whoami = shared.config.whoamiPath, path.path == whoami {
            return .whoami(identity, route: route, reason: decision.reason)
        }
        if !decision.isAllowed {
            return .allow(identity, route: route, reason: "report-only:" + decision.reason, headers: headers, target: target)
        }
        if case .allow(_, let detail) = decision, !detail.isEmpty {
            return .allow(identity, route: route, reason: decision.reason + ":" + detail, headers: headers, target: target)
        }
        return .allow(identity, route: route, reason: decision.reason, headers: headers, target: target)
    }

    /// A genuine token for another audience: say which, once a minute per audience, because
    /// "what is my audience?" is the question operators ask most.
    private func learnAudience(_ audience: String) {
        guard shared.shouldLogAudience(audience, now: loop.now) else { return }
        EventLog.event(level: .notice, "audience-mismatch", [
            ("token_aud", audience), ("configured", shared.config.verifier.audiences.sorted().joined(separator: ",")),
            ("hint", "the token verified but names another audience; add it with --audience if this proxy serves it"),
        ])
    }

    static func render(_ headers: IdentityHeaders, _ identity: Identity) -> [ExtraField] {
        headers.render(identity).map { ExtraField($0.name, $0.value) }
    }

    // MARK: Heads

    /// The request head sent upstream: hop-by-hop and identity-like headers removed (`_` and `-`
    /// alike), forwarding headers set, the verified identity added. Framing is re-written.
    func writeUpstreamHead(
        _ head: RequestHead, target: String?, identityHeaders: [ExtraField], routeHeaders: IdentityHeaders?,
        policyHeaderNames: [String], stripAssertion: Bool, forwardedFor: ExtraField, forwardedHost: ExtraField?,
        to buffer: ByteBuffer
    ) -> Bool {
        var extra: [ExtraField] = []
        extra.reserveCapacity(6 + identityHeaders.count)
        extra.append(forwardedFor)
        extra.append(forwardedProto(head))
        if let forwardedHost { extra.append(forwardedHost) }
        extra += identityHeaders
        if head.upgrade, let protocols = head.valueString("upgrade") {
            extra.append(ExtraField("Connection", "Upgrade"))
            extra.append(ExtraField("Upgrade", protocols))
        }
        if shared.config.addVia { extra.append(ExtraField("Via", "1.1 iap-proxy")) }
        headScratch.removeAll(keepingCapacity: true)
        let matcher = identityMatcher
        let written = RequestHeadWriter.append(
            head, target: target, framing: head.framing, extraFields: extra, to: &headScratch
        ) { index in
            let field = head.fields[index]
            let name = head.name(of: field)
            if stripAssertion && HeaderName.identityEquals(name, "x-goog-iap-jwt-assertion") { return false }
            // Custom template names too, of this route and of every route, `_` and `-` alike.
            if let routeHeaders, routeHeaders.headers.contains(where: { HeaderName.identityEquals(name, $0.name) }) {
                return false
            }
            if policyHeaderNames.contains(where: { HeaderName.identityEquals(name, $0) }) { return false }
            return !HopByHop.isHopByHop(field, in: head) && !matcher.matches(name)
                && !HeaderName.equals(name, "x-forwarded-for") && !HeaderName.equals(name, "x-forwarded-proto")
                && !HeaderName.equals(name, "x-forwarded-host") && !HeaderName.equals(name, "expect")
        }
        guard written else { return false }
        buffer.append(headScratch)
        return true
    }

    private static let forwardedHTTP = ExtraField("X-Forwarded-Proto", "http")
    private static let forwardedHTTPS = ExtraField("X-Forwarded-Proto", "https")

    private func forwardedProto(_ head: RequestHead) -> ExtraField {
        switch shared.config.forwardedProto {
        case .http: return Self.forwardedHTTP
        case .https: return Self.forwardedHTTPS
        case .auto:
            let incoming = head.value("x-forwarded-proto")
            return incoming?.elementsEqual("https".utf8) == true ? Self.forwardedHTTPS : Self.forwardedHTTP
        }
    }

    /// The response head sent to the client: hop-by-hop headers removed (kept for a 101, where
    /// `Connection: Upgrade` and `Upgrade` are the point), framing re-written.
    func writeResponseHead(
        _ head: ResponseHead, framing: BodyFraming, extraFields: [ExtraField], keepUpgrade: Bool, to buffer: ByteBuffer
    ) {
        headScratch.removeAll(keepingCapacity: true)
        _ = ResponseHeadWriter.append(head, framing: framing, extraFields: extraFields, to: &headScratch) { index in
            let field = head.fields[index]
            if keepUpgrade {
                let name = head.name(of: field)
                return HeaderName.equals(name, "connection") || HeaderName.equals(name, "upgrade")
                    || !HopByHop.isHopByHop(field, in: head)
            }
            return !HopByHop.isHopByHop(field, in: head)
        }
        buffer.append(headScratch)
    }

    // MARK: Upstream pool

    /// A pooled connection, most recently used first (its peer is least likely to have closed it).
    func takePooled() -> UpstreamConnection? {
        while let connection = pool.popLast() {
            shared.metrics.pooledUpstreams.subtract(1, ordering: .relaxed)
            if connection.isReusable { return connection }
            connection.close()
        }
        return nil
    }

    func returnToPool(_ connection: UpstreamConnection) {
        guard !draining, pool.count < shared.config.limits.upstreamPoolSize else { return connection.close() }
        connection.park(now: loop.now)
        pool.append(connection)
        shared.metrics.pooledUpstreams.add(1, ordering: .relaxed)
    }

    func removeFromPool(_ connection: UpstreamConnection) {
        let before = pool.count
        pool.removeAll { $0 === connection }
        shared.metrics.pooledUpstreams.subtract(before - pool.count, ordering: .relaxed)
    }

    // MARK: Request ids and the access log

    func nextRequestID() -> RequestID {
        requestCounter += 1
        return RequestID(prefix: requestPrefix, number: requestCounter)
    }

    /// The end of an exchange: metrics, then the access log line.
    func log(_ exchange: Exchange, client: String, now: Int64) {
        var record = exchange.record.value
        record.duration = monotonicMicroseconds() - exchange.startedAt
        let status = record.status
        let labels = RequestLabels(
            decision: record.decision, reason: record.reason, statusClass: RequestLabels.statusClass(status),
            route: exchange.route?.name ?? "")
        // Consecutive requests nearly always share their labels: compare before hashing four strings.
        let counter: Counter
        if let last = lastRequestCounter, last.labels == labels {
            counter = last.counter
        } else {
            counter = requestCounters[labels] ?? {
                let counter = shared.metrics.requestCounter(labels)
                if requestCounters.count < 10_000 { requestCounters[labels] = counter }
                return counter
            }()
            lastRequestCounter = (labels, counter)
        }
        counter.increment()
        shared.metrics.requestDuration.record(microseconds: record.duration)
        if let upstream = record.upstreamTime { shared.metrics.upstreamDuration.record(microseconds: upstream) }
        guard shared.config.accessLog else { return }
        if shared.config.hashEmails, let email = record.email { record.email = hashedEmail(email) }
        let head = exchange.head
        let method = head.map { $0.bytes[$0.method] } ?? []
        let path = head.map { AccessRecord.redactingSecrets($0.bytes[$0.target]) } ?? []
        switch shared.config.logFormat {
        case .json:
            record.appendJSON(
                requestID: exchange.requestID, client: client, method: method, path: path, clock: &logClock,
                to: &logBuffer)
        case .text:
            record.appendText(
                requestID: exchange.requestID.string, client: client, method: method, path: path, clock: &logClock,
                to: &logBuffer)
        }
        if logBuffer.count > 64 * 1024 { flushLog() }
    }

    /// `sha256:` and the first 16 hex digits of the address's SHA-256: stable across lines (so one
    /// user's requests can be followed) without the address itself. Remembered per loop.
    private func hashedEmail(_ email: String) -> String {
        if let known = emailDigests[email] { return known }
        let digest = StreamingDigest.hash(.sha256, Array(email.utf8)).prefix(8)
        let hex = "sha256:" + digest.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        if emailDigests.count >= 10_000 { emailDigests.removeAll() }
        emailDigests[email] = hex
        return hex
    }

    /// Complete requests wait in their upstream connection's buffer, and finished answers in
    /// their client's, until this batch of events is handled; then all go out together. A peer
    /// on the same machine is woken once per batch instead of once per message: an app on the
    /// proxy's core no longer preempts it at every request (fresh tokens, 64 connections: the
    /// app's CPU per request fell by a quarter, throughput rose ~10 %), and a client on another
    /// core is no longer sent an interrupt per answer (1,000 connections: ~10 % of the proxy's
    /// CPU went to those wake-ups).
    func flushAtIterationEnd(upstreamOf client: ClientConnection) { pendingUpstreamFlushes.append(client) }

    func flushAtIterationEnd(client: ClientConnection) { pendingAnswers.append(client) }

    private func flushPending() {
        // Writing an answer may start a pipelined request, which queues its own upstream write.
        while !pendingUpstreamFlushes.isEmpty || !pendingAnswers.isEmpty {
            var index = 0
            while index < pendingUpstreamFlushes.count {  // a failed flush may answer (502) and queue more
                pendingUpstreamFlushes[index].flushDeferredUpstream()
                index += 1
            }
            pendingUpstreamFlushes.removeAll(keepingCapacity: true)
            index = 0
            while index < pendingAnswers.count {
                pendingAnswers[index].flushDeferredAnswer()
                index += 1
            }
            pendingAnswers.removeAll(keepingCapacity: true)
        }
    }

    private func flushLog() {
        guard !logBuffer.isEmpty else { return }
        shared.accessLog.write(logBuffer)
        logBuffer.removeAll(keepingCapacity: true)
    }
}
