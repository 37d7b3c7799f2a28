import Glibc

/// A listening socket in one loop. With SO_REUSEPORT every loop has its own on the same port
/// and the kernel spreads connections; at the connection cap a listener stops accepting (new
/// connections wait in the backlog) until connections close.
final class Listener: LoopHandler {
    private let fd: Int32
    private var token: EventLoop.Token?
    private let loop: EventLoop
    /// Asked before each accept; false pauses the listener until `resumeIfPossible`.
    private let mayAccept: () -> Bool
    private let onAccept: (Int32, SocketAddress) -> Void
    private var paused = false
    /// Out of descriptors or memory: accepting stays paused until then (monotonic ms).
    private var resourcesBackoffUntil: Int64 = 0
    let port: UInt16

    init(
        address: SocketAddress, loop: EventLoop, mayAccept: @escaping () -> Bool = { true },
        onAccept: @escaping (Int32, SocketAddress) -> Void
    ) throws(IOError) {
        fd = try Socket.listen(on: address)
        self.loop = loop
        self.mayAccept = mayAccept
        self.onAccept = onAccept
        port = Socket.localAddress(fd)?.port ?? address.port
        do {
            token = try loop.register(fd, interest: Readiness.readable, handler: self)
        } catch {
            Glibc.close(fd)
            throw error
        }
    }

    func handle(_ events: UInt32) {
        // Accept a bounded batch per wake-up (level-triggered: more will be reported).
        for _ in 0..<128 {
            if !mayAccept() { return pause() }
            do {
                guard let (connection, peer) = try Socket.accept(fd) else { return }
                onAccept(connection, peer)
            } catch {
                switch error.errno {
                case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                    // The connection stays in the backlog and the listener stays readable: without
                    // a pause the loop would spin. Retry once descriptors may have been freed.
                    resourcesBackoffUntil = loop.now + 100
                    return pause()
                default:
                    continue  // this connection failed (ECONNABORTED, ...): take the next
                }
            }
        }
    }

    func sweep(now: Int64) { resumeIfPossible() }

    private func pause() {
        guard !paused, let token else { return }
        paused = true
        loop.modify(fd, token: token, interest: 0)
    }

    func resumeIfPossible() {
        guard paused, loop.now >= resourcesBackoffUntil, mayAccept(), let token else { return }
        paused = false
        loop.modify(fd, token: token, interest: Readiness.readable)
    }

    func close() {
        guard let token else { return }
        self.token = nil
        loop.deregister(fd, token: token)
        Glibc.close(fd)
    }
}
