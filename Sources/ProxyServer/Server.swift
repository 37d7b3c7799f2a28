import Glibc
import IAPAuth
import Synchronization

/// `iap-proxy serve`: N event-loop threads, each with its own listener on the same port, and
/// the main thread waiting for signals. SIGTERM/SIGINT drain (stop accepting, finish in-flight
/// requests up to the drain timeout, exit); SIGHUP calls `onReload`.
public final class Server {
    public let shared: SharedState
    private let workers: [Worker]
    private let finished = FinishedCount()

    /// Opens every listener now, so a port in use fails the start, not a thread later.
    public init(shared: SharedState) throws(IOError) {
        self.shared = shared
        var workers: [Worker] = []
        var address = shared.config.listen
        for index in 0..<max(1, shared.config.workers) {
            let worker = try Worker(index: index, shared: shared)
            try worker.listen(on: address)
            // Port 0: the kernel picked one for the first listener; the others share it.
            if index == 0, let port = worker.listeningPort { address = address.withPort(port) }
            workers.append(worker)
        }
        self.workers = workers
        let mailboxes = workers.map { $0.loop.poster }
        shared.keys.subscribe { _ in
            for mailbox in mailboxes { mailbox.post(.keysChanged) }
        }
    }

    /// The bound ports (useful with port 0 in tests).
    public var port: UInt16 { workers[0].listeningPort ?? 0 }
    public var adminPort: UInt16? { workers[0].adminPort }

    /// SIGTERM, SIGINT and SIGHUP, which only `run`'s `sigwait` may receive.
    private static var handledSignals: sigset_t {
        var signals = sigset_t()
        sigemptyset(&signals)
        for handled in [SIGTERM, SIGINT, SIGHUP] { sigaddset(&signals, handled) }
        return signals
    }

    /// Blocks the handled signals in the calling thread and every thread it starts afterwards.
    /// Call on the main thread before starting any thread: a thread that does not block them
    /// would take a signal's default action (exit) when it is the one the kernel picks.
    public static func blockHandledSignals() {
        signal(SIGPIPE, SIG_IGN)
        var signals = handledSignals
        pthread_sigmask(SIG_BLOCK, &signals, nil)
    }

    /// Runs until SIGTERM or SIGINT and the drain that follows. Call from the main thread.
    public func run(onReload: @escaping () -> Void = {}) {
        Self.blockHandledSignals()
        var signals = Self.handledSignals
        let threads = workers.map { worker in
            let handoff = LoopHandoff(worker: worker)
            return startLoopThread { [finished] in
                handoff.worker.run()
                finished.count.add(1, ordering: .sequentiallyConsistent)
            }
        }
        EventLog.event("serving", [
            ("listen", "\(shared.config.listen.ip):\(port)"), ("upstream", "\(shared.config.upstream)"),
            ("workers", "\(workers.count)"), ("admin", adminPort.map { "\(shared.config.admin!.ip):\($0)" } ?? "off"),
        ])
        while true {
            var received: Int32 = 0
            guard sigwait(&signals, &received) == 0 else { continue }
            if received == SIGHUP {
                onReload()
                continue
            }
            break
        }
        drain()
        for thread in threads where finished.count.load(ordering: .sequentiallyConsistent) == workers.count {
            pthread_join(thread, nil)
        }
    }

    /// Stops every loop from accepting and waits (up to the drain timeout) for in-flight requests.
    public func drain() {
        EventLog.event("draining", [("timeout_ms", "\(shared.config.timeouts.drain)")])
        for worker in workers { worker.loop.poster.post(.drain) }
        let deadline = monotonicMilliseconds() + shared.config.timeouts.drain
        while finished.count.load(ordering: .sequentiallyConsistent) < workers.count && monotonicMilliseconds() < deadline {
            usleep(20_000)
        }
        let open = shared.liveConnections.load(ordering: .relaxed)
        EventLog.event("drained", [("connections_left", "\(open)")])
    }
}

/// Loops that have returned from `run`.
private final class FinishedCount: Sendable {
    let count = Atomic<Int>(0)
}

/// Hands a worker to the thread that runs it. Built on the starting thread, a worker is from
/// then on touched only by its own loop thread (other threads use its mailbox).
private final class LoopHandoff: @unchecked Sendable {
    let worker: Worker
    init(worker: Worker) { self.worker = worker }
}

/// Starts a thread running `body`.
private func startLoopThread( _ body: @escaping @Sendable () -> Void) -> pthread_t {
    final class Box: @unchecked Sendable {  // handed to exactly one new thread
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    var thread = pthread_t()
    let result = pthread_create(&thread, nil, { argument in
        Unmanaged<Box>.fromOpaque(argument!).takeRetainedValue().body()
        return nil
    }, box)
    precondition(result == 0, "pthread_create: \(result)")
    return thread
}
