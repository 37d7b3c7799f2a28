import CLinux
import Glibc
import IAPAuth

/// Something that owns a file descriptor registered with an `EventLoop`.
protocol LoopHandler: AnyObject {
    /// Readiness of the descriptor (EPOLLIN, EPOLLOUT, EPOLLRDHUP, EPOLLHUP, EPOLLERR bits).
    func handle(_ events: UInt32)
    /// Called on every sweep; the handler closes itself when one of its deadlines passed.
    func sweep(now: Int64)
}

/// Epoll readiness bits, as Swift cannot see the C enum's values through Glibc.
enum Readiness {
    static let readable = EPOLLIN.rawValue
    static let writable = EPOLLOUT.rawValue
    static let peerClosedWrite = EPOLLRDHUP.rawValue
    static let hangUp = EPOLLHUP.rawValue
    static let error = EPOLLERR.rawValue
}

/// One epoll instance driven by one thread. Every socket it watches belongs to this thread
/// alone; other threads talk to it only through `post`, which wakes it with an eventfd.
///
/// Registrations live in a slot table; the epoll user data is `generation << 32 | slot`, so an
/// event for a descriptor that was closed (and whose slot was reused) within the same batch is
/// recognised as stale and dropped (the idea of NIO's `EPollUserData`).
final class EventLoop {
    /// Messages other threads may send to this loop.
    enum Message: Sendable {
        case keysChanged
        case drain
        case stop
    }

    private struct Slot {
        var handler: LoopHandler?
        var generation: UInt32 = 0
    }

    struct Token: Equatable {
        fileprivate let slot: Int
        fileprivate let generation: UInt32
    }

    /// Buffer memory for this loop's connections.
    let buffers = BufferPool()
    private let epoll: Int32
    private let wakeFD: Int32
    private var slots: [Slot] = []
    private var freeSlots: [Int] = []
    private let events: UnsafeMutablePointer<epoll_event>
    private static let batch: Int32 = 256
    private let mailbox: Mailbox
    private var running = true

    /// Monotonic milliseconds, refreshed after every wait (cheap to read on the hot path).
    private(set) var now: Int64 = monotonicMilliseconds()
    /// How often handlers are swept for expired deadlines.
    var sweepInterval: Int64 = 250
    private var nextSweep: Int64 = 0
    /// Receives the messages posted to this loop, on the loop thread.
    var onMessage: (Message) -> Void = { _ in }
    /// Runs after every batch of events (the access log is flushed here: one write per batch).
    var onIterationEnd: () -> Void = {}
    /// Number of live registrations (connections, listeners).
    private(set) var registrationCount = 0

    /// The thread-safe side of a loop: what other threads may hold.
    final class Mailbox: Sendable {
        private let queue = Locked<[Message]>([])
        fileprivate let wakeFD: Int32

        fileprivate init(wakeFD: Int32) { self.wakeFD = wakeFD }

        func post(_ message: Message) {
            queue.withLock { $0.append(message) }
            var one: UInt64 = 1
            _ = Glibc.write(wakeFD, &one, 8)
        }

        fileprivate func take() -> [Message] { queue.withLock { messages in defer { messages = [] }; return messages } }
    }

    init() throws(IOError) {
        epoll = clinux_epoll_create()
        guard epoll >= 0 else { throw IOError(call: "epoll_create1", errno: errno) }
        wakeFD = clinux_eventfd()
        guard wakeFD >= 0 else { throw IOError(call: "eventfd", errno: errno) }
        events = .allocate(capacity: Int(Self.batch))
        mailbox = Mailbox(wakeFD: wakeFD)
        guard clinux_epoll_ctl(epoll, EPOLL_CTL_ADD, wakeFD, Readiness.readable, UInt64.max) == 0 else {
            throw IOError(call: "epoll_ctl(eventfd)", errno: errno)
        }
    }

    deinit {
        events.deallocate()
        close(wakeFD)
        close(epoll)
    }

    /// The handle other threads use to reach this loop.
    var poster: Mailbox { mailbox }

    /// Watches `fd` for `interest` on behalf of `handler`.
    func register(_ fd: Int32, interest: UInt32, handler: LoopHandler) throws(IOError) -> Token {
        let slot: Int
        if let free = freeSlots.popLast() {
            slot = free
        } else {
            slot = slots.count
            slots.append(Slot())
        }
        slots[slot].handler = handler
        let token = Token(slot: slot, generation: slots[slot].generation)
        guard clinux_epoll_ctl(epoll, EPOLL_CTL_ADD, fd, interest, userData(token)) == 0 else {
            let error = IOError(call: "epoll_ctl(ADD)", errno: errno)
            release(token)
            throw error
        }
        registrationCount += 1
        return token
    }

    /// Changes what `fd` is watched for (level-triggered: stop asking for EPOLLIN to pause reads).
    func modify(_ fd: Int32, token: Token, interest: UInt32) {
        if clinux_epoll_ctl(epoll, EPOLL_CTL_MOD, fd, interest, userData(token)) != 0 {
            preconditionFailure("epoll_ctl(MOD) on a registered fd failed: \(errno)")
        }
    }

    /// Stops watching `fd` (before it is closed) and frees the slot.
    func deregister(_ fd: Int32, token: Token) {
        _ = clinux_epoll_ctl(epoll, EPOLL_CTL_DEL, fd, 0, 0)
        release(token)
        registrationCount -= 1
    }

    private func release(_ token: Token) {
        slots[token.slot].handler = nil
        slots[token.slot].generation &+= 1
        freeSlots.append(token.slot)
    }

    private func userData(_ token: Token) -> UInt64 { UInt64(token.generation) << 32 | UInt64(token.slot) }

    /// Runs until a `.stop` message (handled by `onMessage`) calls `stop()`.
    func run() {
        nextSweep = now + sweepInterval
        while running {
            let timeout = Int32(clamping: max(0, nextSweep - monotonicMilliseconds()))
            let count = clinux_epoll_wait(epoll, events, Self.batch, timeout)
            now = monotonicMilliseconds()
            if count < 0 && errno != EINTR { preconditionFailure("epoll_wait: \(errno)") }
            for index in 0..<max(count, 0) {
                let data = clinux_epoll_event_data(events, Int32(index))
                let mask = clinux_epoll_event_mask(events, Int32(index))
                if data == UInt64.max {
                    drainWakeups()
                    continue
                }
                let slot = Int(data & 0xFFFF_FFFF)
                let generation = UInt32(data >> 32)
                guard slot < slots.count, slots[slot].generation == generation, let handler = slots[slot].handler else {
                    continue  // the descriptor was closed earlier in this batch
                }
                handler.handle(mask)
            }
            if now >= nextSweep {
                nextSweep = now + sweepInterval
                for slot in slots.indices { slots[slot].handler?.sweep(now: now) }
            }
            onIterationEnd()
        }
    }

    /// The registered handlers of one type (for drain, which must visit every connection).
    func handlers<Handler: LoopHandler>(of type: Handler.Type) -> [Handler] {
        slots.compactMap { $0.handler as? Handler }
    }

    func stop() { running = false }

    private func drainWakeups() {
        var counter: UInt64 = 0
        _ = Glibc.read(wakeFD, &counter, 8)
        for message in mailbox.take() { onMessage(message) }
    }
}
