import Glibc
import HTTP1
import IAPAuth

/// One client connection. Requests are handled one at a time: a pipelined request waits in the
/// inbound buffer until the previous response is complete, so responses leave in order.
///
///     readingHead ──admitted──▶ exchanging ──response done──▶ readingHead (keep-alive)
///          │  └─unknown kid──▶ awaitingKeys ──keys arrived──▶ (admission again)
///          └─refused──▶ closing        exchanging ──101──▶ tunnel
///
/// All buffering is bounded: reading from one side pauses while the other side's queue is above
/// the high-water mark (backpressure), and the inbound buffer is capped.
final class ClientConnection: LoopHandler {
    enum State {
        case readingHead
        case awaitingKeys(RequestHead)
        case exchanging
        case tunnel
        /// Writing the last queued bytes, then closing.
        case closing
        case closed
    }

    let fd: Int32
    var token: EventLoop.Token?
    unowned let worker: Worker
    let peer: SocketAddress
    /// The client's IP (formatted once per connection) and the X-Forwarded fields made from it.
    var forwarded: ForwardedFields
    var peerIP: String { forwarded.clientIP }
    let inbound: ByteBuffer
    let outbound: ByteBuffer
    var state = State.readingHead
    /// When waiting on the client times out (monotonic ms): its head, its idle keep-alive, its
    /// request body, its reading of our response, the tunnel's idle time.
    var deadline: Int64
    /// When waiting on the upstream times out during an exchange: connecting, answering, taking
    /// the request body. Only checked while we are actually waiting on it.
    var upstreamDeadline = Int64.max
    var exchange: Exchange?
    var requestsServed = 0
    /// The client closed its side (read returned 0).
    var sawEOF = false
    private var interest: UInt32 = 0
    /// A finished answer waits for the end of this batch of events to be written.
    private var answerPending = false
    /// Set while the upstream cannot take more request body bytes.
    var readPaused = false
    /// Tunnel only: our write side toward each peer is shut.
    var shutClientWrite = false
    var shutUpstreamWrite = false

    /// Stop reading once this much is buffered (a request head, or body awaiting the upstream).
    static let inboundCap = 64 * 1024

    var config: ServerConfig { worker.shared.config }

    init(fd: Int32, peer: SocketAddress, worker: Worker) {
        self.fd = fd
        self.peer = peer
        forwarded = ForwardedFields(clientIP: peer.ip)
        self.worker = worker
        inbound = ByteBuffer(pool: worker.loop.buffers)
        outbound = ByteBuffer(pool: worker.loop.buffers)
        deadline = worker.loop.now + worker.shared.config.timeouts.head
    }

    // MARK: Events

    func handle(_ events: UInt32) {
        if events & (Readiness.hangUp | Readiness.error) != 0 && !mayRead {
            // Reset (or closed) while we are not reading: no read will report it, nothing we send
            // can arrive, and the level-triggered event would repeat, spinning the loop, for as
            // long as the exchange lasted. Only a tunnel whose two halves are both shut sees a
            // plain hang-up as its normal end.
            let tunnelClosing = shutClientWrite && events & Readiness.error == 0
            if !tunnelClosing { return abort("client-reset") }
        }
        if events & Readiness.readable != 0 || events & (Readiness.hangUp | Readiness.error) != 0 {
            guard readClient() else { return }
        }
        if events & Readiness.writable != 0 {
            guard flushClient() else { return }
        }
        advance()
        updateInterest()
    }

    /// Moves the current phase forward with whatever is buffered.
    func advance() {
        switch state {
        case .readingHead: readHead()
        case .exchanging:
            pumpRequestBody()
            // Response bytes that waited in the upstream's buffer while the client was slow: the
            // upstream may have nothing more to send, so no upstream event would move them.
            if let upstream = exchange?.upstream, !upstream.readPaused, !upstream.inbound.isEmpty { pumpResponse() }
        case .tunnel: pumpTunnel()
        case .closing: if outbound.isEmpty { close() }
        case .awaitingKeys, .closed: break
        }
    }

    /// Whether a read could take anything: not after EOF, nor with the inbound buffer full.
    private var mayRead: Bool { !sawEOF && inbound.count < Self.inboundCap }

    /// Reads once. Returns false when the connection was closed because of an error.
    private func readClient() -> Bool {
        guard mayRead else { return true }
        do {
            let buffer = inbound.writable(minimum: 4096, preferred: 16 * 1024)
            switch try Socket.read(fd, into: buffer) {
            case .wouldBlock: break
            case .done(0): sawEOF = true
            case .done(let count):
                inbound.commit(count)
                noteClientProgress()
            }
            return true
        } catch {
            abort("client-reset")
            return false
        }
    }

    /// Writes queued bytes. Returns false when the client is gone (the exchange is aborted).
    @discardableResult
    func flushClient() -> Bool {
        do {
            while !outbound.isEmpty {
                guard case .done(let count) = try Socket.write(fd, outbound.readable) else { break }
                outbound.consume(count)
                noteClientProgress()
            }
            outbound.releaseIfEmpty()
            // Room again: let the upstream's response flow.
            if let upstream = exchange?.upstream ?? tunnelUpstream, upstream.readPaused,
                outbound.count < config.limits.writeHighWater
            {
                upstream.readPaused = false
                upstream.updateInterest()
            }
            // Room again for answers to a pipelining client (see `finish`); `advance` reads on.
            if case .readingHead = state, readPaused, outbound.count < config.limits.writeHighWater {
                readPaused = false
            }
            return true
        } catch {
            abort("client-reset")
            return false
        }
    }

    func updateInterest() {
        guard let token, !isClosed else { return }
        var wanted: UInt32 = 0
        if !outbound.isEmpty && !answerPending { wanted |= Readiness.writable }  // pending: written this batch
        var closing = false
        if case .closing = state { closing = true }
        if !closing && mayRead && !readPaused { wanted |= Readiness.readable }
        if wanted != interest {
            interest = wanted
            worker.loop.modify(fd, token: token, interest: wanted)
        }
    }

    /// The deferred write of a finished answer (see `Worker.flushAtIterationEnd`), then on as
    /// after any write: a pipelined request may be waiting for the room it made.
    func flushDeferredAnswer() {
        answerPending = false
        guard !isClosed, flushClient() else { return }
        advance()
        updateInterest()
    }

    /// Between requests with nothing buffered: safe to close when draining.
    var isIdle: Bool {
        guard case .readingHead = state else { return false }
        return exchange == nil && inbound.isEmpty && outbound.isEmpty
    }

    var isClosed: Bool {
        if case .closed = state { return true }
        return false
    }

    // MARK: Timeouts

    /// Bytes moved to or from the client push its deadline out (a head must still be complete
    /// within `head`, however slowly it trickles).
    func noteClientProgress() {
        switch state {
        case .exchanging: deadline = worker.loop.now + config.timeouts.client
        case .tunnel: deadline = worker.loop.now + config.timeouts.tunnelIdle
        case .readingHead, .closing, .awaitingKeys, .closed: break
        }
    }

    /// Bytes moved to or from the upstream push its deadline out.
    func noteUpstreamProgress() {
        switch state {
        case .exchanging:
            let connecting = exchange?.upstream?.connecting == true
            upstreamDeadline = worker.loop.now + (connecting ? config.timeouts.upstreamConnect : config.timeouts.upstreamResponse)
        case .tunnel: deadline = worker.loop.now + config.timeouts.tunnelIdle
        case .readingHead, .closing, .awaitingKeys, .closed: break
        }
    }

    func sweep(now: Int64) {
        if case .exchanging = state { return sweepExchange(now: now) }
        guard now >= deadline else { return }
        switch state {
        case .readingHead:
            if inbound.isEmpty && requestsServed > 0 {
                close()  // idle keep-alive connection
            } else {
                refuse(status: 408, decision: "error", reason: "head-timeout", close: true)
            }
        case .awaitingKeys(let head):
            worker.unpark(self)
            deny(head, status: 401, reason: RejectionReason.unknownKid.rawValue)
        case .exchanging: break  // sweepExchange
        case .tunnel: closeTunnel()
        case .closing: abort("client-timeout")
        case .closed: break
        }
    }

    /// Each side's timeout counts only while we wait on that side: a client paused by upstream
    /// backpressure is not slow, nor is an upstream we stopped reading for a slow client.
    private func sweepExchange(now: Int64) {
        guard let exchange else { return close() }
        let upstream = exchange.upstream
        let waitingOnClient = (!exchange.requestComplete && !readPaused && upstream?.connecting != true) || !outbound.isEmpty
        if waitingOnClient && now >= deadline {
            if exchange.responseStarted { return abort("client-timeout") }
            return failExchange(status: 408, reason: "client-timeout")
        }
        guard let upstream else { return }
        let answering = (exchange.requestComplete || exchange.responseStarted) && !upstream.readPaused
        let waitingOnUpstream = upstream.connecting || !upstream.outbound.isEmpty || answering
        if waitingOnUpstream && now >= upstreamDeadline {
            if upstream.connecting {
                worker.shared.metrics.upstreamConnectErrors.increment()
                return failExchange(status: 502, reason: "upstream-connect-timeout")
            }
            if exchange.responseStarted { return abort("upstream-timeout") }
            return failExchange(status: 504, reason: "upstream-timeout")
        }
    }

    // MARK: Request heads

    private func readHead() {
        while case .readingHead = state, !readPaused {
            guard !inbound.isEmpty else {
                inbound.releaseIfEmpty()
                if sawEOF { close() }
                return
            }
            switch HTTP1Parser.parseRequestHead(inbound.readable, limits: config.limits.http) {
            case .incomplete:
                if sawEOF { close() }  // the client gave up mid-head
                return
            case .invalid(let error):
                refuse(status: error.status, decision: "error", reason: error.reason, close: true)
                return
            case .complete(let head, let length):
                inbound.consume(length)
                // Nothing more buffered (a GET, usually): the 16 KiB read block goes back to the pool
                // for the exchange's duration, not after it (1,000 connections held 16 MiB).
                inbound.releaseIfEmpty()
                start(head)
            }
        }
    }

    /// A complete request head: admit it, or refuse it with a generic page.
    private func start(_ head: RequestHead) {
        exchange = Exchange(head: head, worker: worker)
        guard head.targetForm == .origin || head.targetForm == .asterisk else {
            // Absolute-form targets name another host: a reverse proxy has no business with them.
            refuse(status: 400, decision: "error", reason: "absolute-form-target", close: true)
            return
        }
        guard head.host != nil else {
            // HTTP/1.0 allows no Host, but we forward as HTTP/1.1, which requires one (found by fuzzing).
            refuse(status: 400, decision: "error", reason: "missing-host", close: true)
            return
        }
        admit(head, mayWait: true)
    }

    func admit(_ head: RequestHead, mayWait: Bool) {
        switch worker.admit(head, mayWaitForKeys: mayWait) {
        case .allow(let identity, let route, let reason, let headers, let target):
            exchange?.admitted(identity, route: route, reason: reason, headers: headers, target: target)
            beginUpstream(head)
        case .respondLocally(let body, let route):
            exchange?.route = route
            respondLocally(head, body: body, contentType: "text/plain; charset=utf-8", reason: "local-response")
        case .whoami(let identity, let route, let reason):
            exchange?.admitted(identity, route: route, reason: reason, headers: [], target: nil)
            respondLocally(head, body: Self.whoami(identity, route: route, reason: reason), contentType: "application/json",
                           reason: "whoami")
        case .deny(let status, let reason, _, let route, let email):
            exchange?.route = route
            exchange?.record.value.email = email
            deny(head, status: status, reason: reason)
        case .waitForKeys:
            state = .awaitingKeys(head)
            deadline = worker.loop.now + config.timeouts.keyWait
            worker.park(self)
        }
    }

    /// Called by the worker when a new key set arrived while this request waited for its kid.
    func keysChanged() {
        guard case .awaitingKeys(let head) = state else { return }
        state = .readingHead  // not reading: admission decides what comes next
        admit(head, mayWait: false)
        updateInterest()
    }

    private func deny(_ head: RequestHead, status: Int, reason: String) {
        // The body was not read: keep the connection only if there is none.
        let close = head.framing != .none || !head.keepAlive
        refuse(status: status, decision: status == 400 ? "error" : "deny", reason: reason, close: close)
    }

    /// Answered by iap-proxy itself (a load balancer's health check, whoami): 200, never the app.
    private func respondLocally(_ head: RequestHead, body: String, contentType: String, reason: String) {
        guard let exchange else { return }
        let close = head.framing != .none || !head.keepAlive || sawEOF || worker.draining
        var response = "HTTP/1.1 200 OK\r\nContent-Type: \(contentType)\r\n"
        response += "Content-Length: \(body.utf8.count)\r\nCache-Control: no-store\r\n"
        if close { response += "Connection: close\r\n" }
        let sent = head.isHeadMethod ? "" : body  // HEAD: the same head, no body
        outbound.append(Array((response + "\r\n" + sent).utf8))
        exchange.record.value.status = 200
        exchange.record.value.decision = "allow"
        exchange.record.value.reason = reason
        exchange.record.value.bytes = sent.utf8.count
        finish(exchange, keepAlive: !close)
    }

    /// Answers the current request locally with a short generic page (the reason goes to the log,
    /// never to the client) and continues with the next request or closes.
    func refuse(status: Int, decision: String, reason: String, close: Bool) {
        let exchange = exchange ?? Exchange(head: nil, worker: worker)
        let closing = close || sawEOF || worker.draining
        let body = ErrorPage.append(
            status: status, requestID: exchange.requestID.string, close: closing,
            headRequest: exchange.head?.isHeadMethod ?? false, to: outbound)
        exchange.record.value.status = status
        exchange.record.value.decision = decision
        exchange.record.value.reason = reason
        exchange.record.value.bytes = body
        finish(exchange, keepAlive: !closing)
    }

    /// What the whoami path answers: the verified claims and what the policy made of them.
    static func whoami(_ identity: Identity, route: Route, reason: String) -> String {
        let answer = JSONValue.object(JSONObject([
            .init(name: "email", value: .string(identity.email)),
            .init(name: "sub", value: .string(identity.subject)),
            .init(name: "hd", value: identity.hostedDomain.map(JSONValue.string) ?? .null),
            .init(name: "access_levels", value: .array(identity.accessLevels.map(JSONValue.string))),
            .init(name: "route", value: .string(route.name)),
            .init(name: "decision", value: .string(Policy.decide(route, identity).isAllowed ? "allow" : "deny")),
            .init(name: "reason", value: .string(reason)),
            .init(name: "report_only", value: .bool(route.reportOnly)),
            .init(name: "claims", value: .object(identity.claims)),
        ]))
        return answer.serialized() + "\n"
    }

    // MARK: Finishing

    /// Logs the exchange and either waits for the next request or closes after flushing.
    func finish(_ exchange: Exchange, keepAlive: Bool) {
        worker.log(exchange, client: peerIP, now: worker.loop.now)
        self.exchange = nil
        requestsServed += 1
        let keepReading = keepAlive && !sawEOF && !worker.draining
        if keepReading && outbound.count < config.limits.writeHighWater {
            answerPending = true
            worker.flushAtIterationEnd(client: self)  // with the rest of this batch's answers
        } else {
            // A failed write has closed the connection (the client reset it): nothing more to do.
            guard flushClient() else { return }
        }
        if keepReading {
            state = .readingHead
            deadline = worker.loop.now + (inbound.isEmpty ? config.timeouts.idle : config.timeouts.head)
            // A client that pipelines and does not read: answer its next request (a pipelined
            // 401 costs us nothing to make) only once it has read what is queued.
            readPaused = outbound.count >= config.limits.writeHighWater
            if !readPaused { readHead() }  // a pipelined request may already be here
        } else {
            state = .closing
            deadline = worker.loop.now + config.timeouts.client
            if outbound.isEmpty { close() }
        }
    }

    /// Closes after the queued bytes are written (FIN, a normal end).
    func close() {
        guard !isClosed, let token else { return }
        if let upstream = exchange?.upstream ?? tunnelUpstream { upstream.close() }
        leaveTunnel()
        if case .awaitingKeys = state { worker.unpark(self) }
        state = .closed
        worker.loop.deregister(fd, token: token)
        Glibc.close(fd)
        worker.connectionClosed(self)
    }

    /// Ends a broken exchange: both sockets are reset so neither side mistakes a truncated
    /// message for a complete one.
    func abort(_ reason: String) {
        guard !isClosed, let token else { return }
        if let exchange {
            if exchange.record.value.status == 0 { exchange.record.value.status = 499 }
            if exchange.identity == nil { exchange.record.value.decision = "error" }
            exchange.record.value.reason = reason
            worker.log(exchange, client: peerIP, now: worker.loop.now)
            self.exchange = nil
            exchange.upstream?.close(abort: true)
        }
        tunnelUpstream?.close(abort: true)
        leaveTunnel()
        if case .awaitingKeys = state { worker.unpark(self) }
        state = .closed
        worker.loop.deregister(fd, token: token)
        Socket.abort(fd)
        worker.connectionClosed(self)
    }

    /// The upstream connection of an open tunnel.
    var tunnelUpstream: UpstreamConnection?

    private func leaveTunnel() {
        if case .tunnel = state { worker.shared.metrics.tunnels.subtract(1, ordering: .relaxed) }
    }
}
