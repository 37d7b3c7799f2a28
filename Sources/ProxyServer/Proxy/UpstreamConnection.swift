import Glibc

/// A connection to the upstream app. While an exchange uses it, its events go to that client
/// connection; while pooled, any event means the upstream closed it (or misbehaved): it is closed.
final class UpstreamConnection: LoopHandler {
    let fd: Int32
    private var token: EventLoop.Token?
    unowned let worker: Worker
    let inbound: ByteBuffer
    let outbound: ByteBuffer
    /// The exchange using this connection; nil while pooled. Strong, not weak: a weak reference
    /// moves the client's reference count to a side table, where every retain and release of it
    /// takes the slow path (~2 % of the proxy's CPU at 1,000 connections). The cycle it makes
    /// lasts only while the exchange uses this connection: `park` and `close` end it, and a
    /// client lets go of an upstream only through one of them.
    var owner: ClientConnection?
    private(set) var connecting = true
    /// True once it carried a complete exchange (a reused connection may have been closed by
    /// the upstream meanwhile, which makes a retry safe).
    var reused = false
    /// The upstream closed its side (read returned 0).
    private(set) var sawEOF = false
    private var interest: UInt32 = 0
    var readPaused = false
    var idleSince: Int64 = 0
    private(set) var isClosed = false

    init(fd: Int32, worker: Worker) {
        self.fd = fd
        self.worker = worker
        inbound = ByteBuffer(pool: worker.loop.buffers)
        outbound = ByteBuffer(pool: worker.loop.buffers)
    }

    /// Starts a non-blocking connect to the configured upstream.
    static func connect(worker: Worker) throws(IOError) -> UpstreamConnection {
        let fd = try Socket.connect(to: worker.shared.config.upstream)
        let connection = UpstreamConnection(fd: fd, worker: worker)
        do {
            connection.token = try worker.loop.register(fd, interest: Readiness.writable, handler: connection)
        } catch {
            Glibc.close(fd)
            throw error
        }
        connection.interest = Readiness.writable
        return connection
    }

    func handle(_ events: UInt32) {
        if connecting && events & (Readiness.writable | Readiness.error | Readiness.hangUp) != 0 {
            let error = Socket.pendingError(fd)
            connecting = false
            guard error == 0 else {
                owner?.upstreamFailed(self, IOError(call: "connect \(worker.shared.config.upstream)", errno: error))
                return
            }
        }
        guard let owner else {
            close()  // pooled: the upstream closed it or sent something unasked
            worker.removeFromPool(self)
            return
        }
        owner.upstreamEvent(events, self)
    }

    func sweep(now: Int64) {
        // Pooled connections expire here; active ones are timed by their client connection.
        if owner == nil && !isClosed && now - idleSince > worker.shared.config.timeouts.upstreamIdle {
            close()
            worker.removeFromPool(self)
        }
    }

    /// Reads once; returns false on EOF or error (`sawEOF` tells which).
    func read() throws(IOError) -> Bool {
        let buffer = inbound.writable(minimum: 16 * 1024, preferred: 64 * 1024)
        switch try Socket.read(fd, into: buffer) {
        case .wouldBlock: return true
        case .done(0):
            sawEOF = true
            return false
        case .done(let count):
            inbound.commit(count)
            return true
        }
    }

    /// Writes queued bytes; returns how many went out.
    @discardableResult
    func flush() throws(IOError) -> Int {
        guard !connecting else { return 0 }
        var total = 0
        while !outbound.isEmpty {
            switch try Socket.write(fd, outbound.readable) {
            case .wouldBlock: return total
            case .done(let count):
                outbound.consume(count)
                total += count
            }
        }
        outbound.releaseIfEmpty()
        return total
    }

    /// Watches for what the connection needs now: connect completion, bytes to write, bytes to read.
    func updateInterest() {
        guard let token, !isClosed else { return }
        var wanted: UInt32 = 0
        if connecting || !outbound.isEmpty { wanted |= Readiness.writable }
        if !connecting && !readPaused && !sawEOF { wanted |= Readiness.readable }
        if wanted != interest {
            interest = wanted
            worker.loop.modify(fd, token: token, interest: wanted)
        }
    }

    /// Prepares a finished connection for the pool: nothing buffered, reading for EOF only.
    func park(now: Int64) {
        owner = nil
        reused = true
        readPaused = false
        idleSince = now
        inbound.releaseIfEmpty()
        outbound.releaseIfEmpty()
        updateInterest()
    }

    var isReusable: Bool { !isClosed && !sawEOF && !connecting && inbound.isEmpty && outbound.isEmpty }

    func shutdownWrite() { Socket.shutdownWrite(fd) }

    func close(abort: Bool = false) {
        guard !isClosed, let token else { return }
        isClosed = true
        worker.loop.deregister(fd, token: token)
        if abort { Socket.abort(fd) } else { Glibc.close(fd) }
        owner = nil
    }
}
