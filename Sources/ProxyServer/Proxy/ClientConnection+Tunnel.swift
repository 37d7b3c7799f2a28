import HTTP1

/// After the upstream answers 101 to an upgrade request (WebSocket): bytes flow both ways,
/// unparsed, with backpressure, until both sides are done. A side's EOF is passed on as a
/// half-close once its bytes are through; the tunnel has its own idle timeout.
extension ClientConnection {
    func startTunnel(_ response: ResponseHead) {
        guard let exchange, let upstream = exchange.upstream else { return }
        let extra = config.addVia ? [ExtraField("Via", "1.1 iap-proxy")] : []
        worker.writeResponseHead(response, framing: .none, extraFields: extra, keepUpgrade: true, to: outbound)
        exchange.record.value.status = 101
        exchange.record.value.upstreamTime = monotonicMicroseconds() - exchange.sentAt
        exchange.responseStarted = true
        exchange.response = .complete
        tunnelUpstream = upstream
        state = .tunnel
        worker.shared.metrics.tunnels.add(1, ordering: .relaxed)
        noteClientProgress()
        pumpTunnel()
    }

    func tunnelEvent(_ events: UInt32, _ upstream: UpstreamConnection) {
        if events & (Readiness.readable | Readiness.hangUp | Readiness.error) != 0 {
            do {
                _ = try upstream.read()
            } catch {
                return abort("upstream-reset")
            }
        }
        noteUpstreamProgress()
        pumpTunnel()
        updateInterest()
    }

    func pumpTunnel() {
        guard let upstream = tunnelUpstream, let exchange else { return close() }
        let highWater = config.limits.writeHighWater
        if !inbound.isEmpty && upstream.outbound.count < highWater {
            upstream.outbound.append(inbound.readable)
            inbound.consume(inbound.count)
        }
        if !upstream.inbound.isEmpty && outbound.count < highWater {
            exchange.record.value.bytes += upstream.inbound.count
            outbound.append(upstream.inbound.readable)
            upstream.inbound.consume(upstream.inbound.count)
        }
        do {
            try upstream.flush()
        } catch {
            return abort("upstream-reset")
        }
        guard flushClient() else { return }
        readPaused = upstream.outbound.count >= highWater
        upstream.readPaused = outbound.count >= highWater
        // Half-close: pass each side's EOF on once everything it sent went through.
        if sawEOF && inbound.isEmpty && upstream.outbound.isEmpty && !shutUpstreamWrite {
            upstream.shutdownWrite()
            shutUpstreamWrite = true
        }
        if upstream.sawEOF && upstream.inbound.isEmpty && outbound.isEmpty && !shutClientWrite {
            Socket.shutdownWrite(fd)
            shutClientWrite = true
        }
        if shutUpstreamWrite && shutClientWrite { return closeTunnel() }
        upstream.updateInterest()
    }

    func closeTunnel() {
        if let exchange {
            worker.log(exchange, client: peerIP, now: worker.loop.now)
            self.exchange = nil
        }
        tunnelUpstream?.close()
        tunnelUpstream = nil
        close()
    }
}
