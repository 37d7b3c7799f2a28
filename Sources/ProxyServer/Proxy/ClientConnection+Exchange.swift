import Glibc
import HTTP1
import IAPAuth

/// The upstream half of an exchange: connect (or reuse a pooled connection), send the rewritten
/// head and stream the body, read the response head and stream the body back.
extension ClientConnection {
    func beginUpstream(_ head: RequestHead) {
        guard let exchange else { return }
        state = .exchanging
        exchange.requestBody = Exchange.Body(head.framing, limits: config.limits.http)
        if case .none = exchange.requestBody { exchange.requestComplete = true } else { exchange.requestComplete = false }
        // We decided to take the body: say so now (the upstream never sees Expect).
        if head.expectsContinue && !exchange.requestComplete { outbound.append("HTTP/1.1 100 Continue\r\n\r\n") }
        connectUpstream(reusePooled: true)
    }

    private func connectUpstream(reusePooled: Bool) {
        guard let exchange, let head = exchange.head else { return }
        let upstream: UpstreamConnection
        if reusePooled, let pooled = worker.takePooled() {
            upstream = pooled
        } else {
            do {
                upstream = try UpstreamConnection.connect(worker: worker)
            } catch {
                worker.shared.metrics.upstreamConnectErrors.increment()
                return failExchange(status: 502, reason: "upstream-connect-failed")
            }
        }
        upstream.owner = self
        exchange.upstream = upstream
        // An unauthenticated route never passes a client's assertion on: it was not verified.
        let stripAssertion = exchange.identity == nil || !config.forwardAssertion
        guard
            worker.writeUpstreamHead(
                head, target: exchange.target, identityHeaders: exchange.identityHeaders,
                routeHeaders: exchange.route?.identityHeaders,
                policyHeaderNames: worker.shared.policy?.identityHeaderNames ?? [], stripAssertion: stripAssertion,
                forwardedFor: forwarded.forwardedFor(head), forwardedHost: forwarded.forwardedHost(head),
                to: upstream.outbound)
        else {
            return failExchange(status: 500, reason: "header-rewrite-failed")
        }
        exchange.sentAt = monotonicMicroseconds()
        deadline = worker.loop.now + config.timeouts.client
        noteUpstreamProgress()
        pumpRequestBody()
    }

    // MARK: Request body

    /// Moves request body bytes from the client to the upstream, while the upstream keeps up.
    func pumpRequestBody() {
        guard let exchange, let upstream = exchange.upstream else { return }
        let highWater = config.limits.writeHighWater
        pumping: while !exchange.requestComplete && !inbound.isEmpty && upstream.outbound.count < highWater {
            switch exchange.requestBody {
            case .length(var body):
                let count = body.consume(available: inbound.count)
                upstream.outbound.append(UnsafeRawBufferPointer(rebasing: inbound.readable.prefix(count)))
                inbound.consume(count)
                exchange.requestBody = .length(body)
                exchange.requestComplete = body.isFinished
                if body.isFinished { noteUpstreamProgress() }
            case .chunked(var decoder):
                let result = decoder.decode(inbound.readable) { data in Chunked.append(data, to: upstream.outbound) }
                exchange.requestBody = .chunked(decoder)
                switch result {
                case .success(let progress):
                    inbound.consume(progress.consumed)
                    if progress.finished {
                        Chunked.appendLast(to: upstream.outbound)
                        exchange.requestComplete = true
                        noteUpstreamProgress()  // the response timeout runs from the end of the request
                    }
                    if progress.consumed == 0 { break pumping }
                case .failure(let error):
                    return failExchange(status: error.status, reason: "request-body-\(error.reason)")
                }
            case .none, .untilClose:
                exchange.requestComplete = true
            }
        }
        if !exchange.requestComplete && sawEOF && inbound.isEmpty {
            return abortExchange("client-closed-mid-body")
        }
        if exchange.requestComplete && !upstream.connecting && upstream.outbound.count < highWater {
            readPaused = false
            return worker.flushAtIterationEnd(upstreamOf: self)  // with the rest of this batch's requests
        }
        flush(upstream)
        // Decide after flushing: pausing on a queue the flush just emptied would wait for an
        // EPOLLOUT that never comes (found by bench/stream.sh).
        guard self.exchange === exchange, exchange.upstream === upstream else { return }
        readPaused = !exchange.requestComplete && upstream.outbound.count >= highWater
    }

    /// The deferred write of a complete request (see `Worker.flushAtIterationEnd`).
    func flushDeferredUpstream() {
        guard !isClosed, let upstream = exchange?.upstream else { return }
        flush(upstream)
        updateInterest()
    }

    /// Writes what the upstream takes; a failure there ends the exchange.
    private func flush(_ upstream: UpstreamConnection) {
        do {
            if try upstream.flush() > 0 { noteUpstreamProgress() }
        } catch {
            return upstreamFailed(upstream, error)
        }
        upstream.updateInterest()
    }

    // MARK: Upstream events

    func upstreamEvent(_ events: UInt32, _ upstream: UpstreamConnection) {
        if case .tunnel = state { return tunnelEvent(events, upstream) }
        guard let exchange, exchange.upstream === upstream else {
            upstream.close()
            return
        }
        if events & Readiness.writable != 0 {
            flush(upstream)
            guard exchange.upstream === upstream else { return updateInterest() }
            pumpRequestBody()
        }
        if events & (Readiness.readable | Readiness.hangUp | Readiness.error) != 0 {
            do {
                _ = try upstream.read()
            } catch {
                return upstreamFailed(upstream, error)
            }
            noteUpstreamProgress()
            pumpResponse()
        }
        updateInterest()
        upstream.updateInterest()
    }

    /// The upstream connection broke (or closed) before the response was complete.
    func upstreamFailed(_ upstream: UpstreamConnection, _ error: IOError?) {
        guard let exchange, exchange.upstream === upstream else {
            upstream.close()
            return
        }
        // A pooled connection the upstream had meanwhile closed: replay once on a fresh one.
        if upstream.reused && exchange.isAwaitingResponseHead && upstream.inbound.isEmpty && exchange.isRetriable {
            exchange.retried = true
            upstream.close(abort: true)
            exchange.upstream = nil
            connectUpstream(reusePooled: false)
            updateInterest()
            return
        }
        if error?.call.hasPrefix("connect") == true {
            worker.shared.metrics.upstreamConnectErrors.increment()
            return failExchange(status: 502, reason: "upstream-connect-failed")
        }
        failExchange(status: 502, reason: error == nil ? "upstream-closed" : "upstream-reset")
    }

    /// Ends the exchange with an error status if nothing was sent to the client yet, else aborts.
    func failExchange(status: Int, reason: String) {
        guard let exchange else { return }
        exchange.upstream?.close(abort: true)
        exchange.upstream = nil
        if exchange.responseStarted { return abortExchange(reason) }
        refuse(status: status, decision: exchange.identity == nil ? "error" : "allow", reason: reason,
               close: !exchange.requestComplete)
    }

    func abortExchange(_ reason: String) { abort(reason) }

    // MARK: Response

    /// Parses the response head and streams the body toward the client, re-framed if needed.
    func pumpResponse() {
        guard let exchange, let request = exchange.head, let upstream = exchange.upstream else { return }
        while true {
            switch exchange.response {
            case .awaitingHead:
                guard !upstream.inbound.isEmpty else {
                    if upstream.sawEOF { upstreamFailed(upstream, nil) }
                    return
                }
                switch HTTP1Parser.parseResponseHead(
                    upstream.inbound.readable, isHeadRequest: request.isHeadMethod, limits: config.limits.http)
                {
                case .incomplete:
                    if upstream.sawEOF { upstreamFailed(upstream, nil) }
                    return
                case .invalid(let error):
                    return failExchange(status: 502, reason: "upstream-\(error.reason)")
                case .complete(let head, let length):
                    upstream.inbound.consume(length)
                    if head.isSwitchingProtocols {
                        guard request.upgrade else { return failExchange(status: 502, reason: "upstream-unasked-101") }
                        return startTunnel(head)
                    }
                    if head.isInformational { continue }  // 100 and 103 are ours to drop
                    startResponse(head, to: request)
                }
            case .body(.none, _):
                // 204, 304, HEAD, Content-Length: 0: complete with the head, whatever else is buffered.
                completeResponse()
                return
            case .body(let body, let clientFraming):
                if outbound.count >= config.limits.writeHighWater {
                    upstream.readPaused = true  // resumed by flushClient once the client drains
                    flushClient()
                    return
                }
                guard !upstream.inbound.isEmpty else {
                    if upstream.sawEOF {
                        guard case .untilClose = body else { return abortExchange("upstream-truncated") }
                        exchange.upstreamKeepAlive = false
                        completeResponse()
                    } else {
                        flushClient()
                    }
                    return
                }
                switch body {
                case .none:
                    return  // handled above
                case .length(var length):
                    let count = length.consume(available: upstream.inbound.count)
                    forward(UnsafeRawBufferPointer(rebasing: upstream.inbound.readable.prefix(count)), clientFraming)
                    upstream.inbound.consume(count)
                    exchange.response = .body(.length(length), toClient: clientFraming)
                    if length.isFinished {
                        completeResponse()
                        return
                    }
                case .chunked(var decoder):
                    let result = decoder.decode(upstream.inbound.readable) { data in forward(data, clientFraming) }
                    exchange.response = .body(.chunked(decoder), toClient: clientFraming)
                    guard case .success(let progress) = result else { return abortExchange("upstream-bad-chunked-body") }
                    upstream.inbound.consume(progress.consumed)
                    if progress.finished {
                        completeResponse()
                        return
                    }
                    if progress.consumed == 0 {
                        flushClient()
                        return
                    }
                case .untilClose:
                    forward(upstream.inbound.readable, clientFraming)
                    upstream.inbound.consume(upstream.inbound.count)
                }
            case .complete:
                return
            }
        }
    }

    private func forward(_ data: UnsafeRawBufferPointer, _ clientFraming: BodyFraming) {
        if clientFraming == .chunked { Chunked.append(data, to: outbound) } else { outbound.append(data) }
        exchange?.record.value.bytes += data.count
    }

    private func startResponse(_ response: ResponseHead, to request: RequestHead) {
        guard let exchange else { return }
        let body: Exchange.Body
        let clientFraming: BodyFraming
        switch response.framing {
        case .none:
            // HEAD and 304 carry the length the body would have; 1xx/204 carry none.
            body = .none
            clientFraming = Self.declaredFraming(of: response, request: request)
        case .contentLength(let length):
            body = length == 0 ? .none : .length(ContentLengthBody(length: length))
            clientFraming = .contentLength(length)
        case .chunked:
            body = .chunked(ChunkedDecoder(limits: config.limits.http))
            clientFraming = .chunked
        case .untilClose:
            body = .untilClose
            // An HTTP/1.1 client gets chunks and keeps its connection; HTTP/1.0 reads until close.
            clientFraming = request.version == .http11 ? .chunked : .untilClose
        }
        exchange.upstreamKeepAlive = response.keepAlive && response.framing != .untilClose
        exchange.keepAlive = request.keepAlive && clientFraming != .untilClose && !worker.draining && !sawEOF
        var extra: [ExtraField] = []
        if !exchange.keepAlive {
            extra.append(ExtraField("Connection", "close"))
        } else if request.version == .http10 {
            extra.append(ExtraField("Connection", "keep-alive"))
        }
        if config.addVia { extra.append(ExtraField("Via", "1.1 iap-proxy")) }
        worker.writeResponseHead(response, framing: clientFraming, extraFields: extra, keepUpgrade: false, to: outbound)
        exchange.record.value.status = response.status
        exchange.record.value.upstreamTime = monotonicMicroseconds() - exchange.sentAt
        exchange.responseStarted = true
        exchange.response = .body(body, toClient: clientFraming)
    }

    /// For HEAD and 304 responses: the framing header the upstream declared, sent with no body.
    static func declaredFraming(of response: ResponseHead, request: RequestHead) -> BodyFraming {
        guard request.isHeadMethod || response.status == 304 else { return .none }
        if let length = response.value("content-length"), let value = UInt64(String(decoding: length, as: UTF8.self)) {
            return .contentLength(value)
        }
        if response.value("transfer-encoding") != nil { return .chunked }
        return .none
    }

    private func completeResponse() {
        guard let exchange, let upstream = exchange.upstream else { return }
        if case .body(_, .chunked) = exchange.response, exchange.head?.isHeadMethod == false,
            !Self.isBodiless(exchange.record.value.status)
        {
            Chunked.appendLast(to: outbound)
        }
        exchange.response = .complete
        exchange.upstream = nil
        if exchange.requestComplete && exchange.upstreamKeepAlive && upstream.isReusable {
            worker.returnToPool(upstream)
        } else {
            upstream.close()
        }
        // If the upstream answered before the whole body arrived, the rest is unread: close.
        finish(exchange, keepAlive: exchange.keepAlive && exchange.requestComplete)
    }

    static func isBodiless(_ status: Int) -> Bool { status == 204 || status == 304 || status < 200 }
}
