import IAPAuth
import Prometheus

/// A Prometheus histogram of durations that costs a request a few integer comparisons and a short
/// lock. swift-prometheus's `DurationHistogram` compares each value with every bucket as a 128-bit
/// `Duration` under its lock: ~700 instructions, twice per request. The exposition is the same:
/// cumulative `_bucket` lines with swift-prometheus's own `le` spelling, then `_sum` and `_count`.
final class LatencyHistogram: Sendable {
    private struct State {
        /// Observations per bucket (not cumulative); one above the last bound is only counted.
        var counts: [Int]
        var sumMicroseconds: Int64 = 0
        var count = 0
    }

    private let name: String
    private let help: String
    /// Upper bounds in microseconds, ascending, and their `le` labels.
    private let bounds: [Int64]
    private let labels: [String]
    /// `Locked`, not `Mutex`: ThreadSanitizer cannot see `Mutex`'s ordering (see `Locked`).
    private let state: Locked<State>

    /// `name` is the full metric name (`iap_proxy_request_duration_seconds`).
    init(name: String, help: String, buckets: [Duration]) {
        precondition(zip(buckets, buckets.dropFirst()).allSatisfy { $0 < $1 }, "buckets must ascend")
        self.name = name
        self.help = help
        bounds = buckets.map { $0.components.seconds * 1_000_000 + $0.components.attoseconds / 1_000_000_000_000 }
        labels = buckets.map(\.bucketRepresentation)
        state = Locked(State(counts: Array(repeating: 0, count: buckets.count)))
    }

    func record(microseconds: Int64) {
        var index = 0
        while index < bounds.count && bounds[index] < microseconds { index += 1 }
        state.withLock { state in
            if index < state.counts.count { state.counts[index] += 1 }
            state.sumMicroseconds += microseconds
            state.count += 1
        }
    }

    func emit(into buffer: inout [UInt8]) {
        let (counts, sum, count) = state.withLock { ($0.counts, $0.sumMicroseconds, $0.count) }
        buffer.append(utf8: "# HELP \(name) \(help)\n# TYPE \(name) histogram\n")
        var cumulative = 0
        for (label, observed) in zip(labels, counts) {
            cumulative += observed
            buffer.append(utf8: "\(name)_bucket{le=\"\(label)\"} \(cumulative)\n")
        }
        buffer.append(utf8: "\(name)_bucket{le=\"+Inf\"} \(count)\n")
        buffer.append(utf8: "\(name)_sum \(Duration.microseconds(sum).bucketRepresentation)\n")
        buffer.append(utf8: "\(name)_count \(count)\n")
    }
}
