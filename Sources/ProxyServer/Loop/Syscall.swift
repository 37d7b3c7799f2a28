import Glibc

/// A failed system call: the call's name and its errno.
public struct IOError: Error, Sendable, CustomStringConvertible {
    public let call: String
    public let errno: Int32

    public var description: String { "\(call): \(String(cString: strerror(errno)))" }
}

/// The outcome of a non-blocking call.
enum IOResult<Value> {
    case done(Value)
    case wouldBlock
}

/// Every syscall goes through here: EINTR retries, EAGAIN becomes `.wouldBlock`, EBADF and
/// EFAULT are our bugs (they trap), anything else is an `IOError` naming the call.
@inline(__always)
func syscall<T: FixedWidthInteger>(_ name: StaticString, _ body: () -> T) throws(IOError) -> IOResult<T> {
    while true {
        let result = body()
        if result >= 0 { return .done(result) }
        let error = errno
        switch error {
        case EINTR: continue
        case EAGAIN, EWOULDBLOCK: return .wouldBlock
        case EBADF, EFAULT: preconditionFailure("\(name): \(String(cString: strerror(error))) (a bug: bad fd or pointer)")
        default: throw IOError(call: "\(name)", errno: error)
        }
    }
}

/// Monotonic milliseconds, the loops' clock for timeouts.
func monotonicMilliseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
}

/// Monotonic microseconds, for request durations (most requests take well under a millisecond).
func monotonicMicroseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec) / 1000
}

/// Wall-clock time for logs: seconds and microseconds since the epoch.
func wallClockMicroseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec) / 1000
}
