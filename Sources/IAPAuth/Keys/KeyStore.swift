/// The current key set, published by one writer (a refresher or a file load) and read by every
/// event loop. Readers copy out the immutable snapshot under a lock held for a pointer copy only.
public final class KeyStore: Sendable {
    private struct State {
        var keys: KeySet?
        var generation: UInt64 = 0
        var publishedAt: Int64 = 0
        var subscribers: [@Sendable (KeySet) -> Void] = []
    }

    private let state = Locked(State())

    public init() {}

    /// The current snapshot, or nil before the first usable set.
    public var current: KeySet? { state.withLock { $0.keys } }

    /// Wall-clock time of the last publish (0 before the first).
    public var publishedAt: Int64 { state.withLock { $0.publishedAt } }

    /// Replaces the snapshot with `keys` under the next generation and tells every subscriber.
    @discardableResult
    public func publish(_ keys: KeySet, at now: Int64) -> KeySet {
        let (published, subscribers) = state.withLock { state in
            state.generation += 1
            state.keys = keys.withGeneration(state.generation)
            state.publishedAt = now
            return (state.keys!, state.subscribers)
        }
        for subscriber in subscribers { subscriber(published) }
        return published
    }

    /// Calls `subscriber` after every publish, on the publishing thread (event loops use it to
    /// wake up and drop cached verifications).
    public func subscribe(_ subscriber: @escaping @Sendable (KeySet) -> Void) {
        state.withLock { $0.subscribers.append(subscriber) }
    }
}
