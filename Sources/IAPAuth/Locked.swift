#if canImport(Glibc)
import Glibc
#endif

/// A value behind a pthread mutex, for state shared between threads (key and policy snapshots,
/// mailboxes, watchers). Like `Synchronization.Mutex`, but ThreadSanitizer sees its ordering:
/// `Mutex` takes its contended path inside the uninstrumented Swift runtime, so under TSan a
/// reader that met the writer at the lock was reported as racing with the value it published
/// (an event loop reading a key set a SIGHUP had just loaded). TSan intercepts pthread locks.
public final class Locked<Value>: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private var value: Value

    public init(_ value: Value) {
        self.value = value
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    public func withLock<Result, Failure: Error>(_ body: (inout Value) throws(Failure) -> Result) throws(Failure) -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
