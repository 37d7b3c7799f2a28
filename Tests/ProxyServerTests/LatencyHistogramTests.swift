import Prometheus
import Testing

@testable import ProxyServer

@Suite("Latency histogram: swift-prometheus's exposition at a fraction of the cost")
struct LatencyHistogramTests {
    let buckets: [Duration] = [.microseconds(500), .milliseconds(1), .seconds(1), .seconds(2.5)]

    func text(_ histogram: LatencyHistogram) -> String {
        var buffer: [UInt8] = []
        histogram.emit(into: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }

    @Test("A value on a bound counts in that bucket (le is <=), buckets are cumulative, +Inf counts all")
    func exposition() {
        let histogram = LatencyHistogram(name: "t_seconds", help: "Help.", buckets: buckets)
        for microseconds: Int64 in [0, 500, 501, 1000, 999_999, 2_500_001, 7_000_000] {
            histogram.record(microseconds: microseconds)
        }
        #expect(text(histogram) == """
            # HELP t_seconds Help.
            # TYPE t_seconds histogram
            t_seconds_bucket{le="0.0005"} 2
            t_seconds_bucket{le="0.001"} 4
            t_seconds_bucket{le="1.0"} 5
            t_seconds_bucket{le="2.5"} 5
            t_seconds_bucket{le="+Inf"} 7
            t_seconds_sum 10.502001
            t_seconds_count 7

            """)
    }

    @Test("The same text as swift-prometheus's DurationHistogram for the same observations")
    func sameAsSwiftPrometheus() {
        let registry = PrometheusCollectorRegistry()
        let reference = registry.makeDurationHistogram(
            descriptor: MetricNameDescriptor(metricName: "t", unitName: "seconds", helpText: "Help."), buckets: buckets)
        let ours = LatencyHistogram(name: "t_seconds", help: "Help.", buckets: buckets)
        for microseconds: Int64 in [3, 500, 750, 1000, 1001, 42_000, 2_500_000, 9_000_000] {
            reference.record(.microseconds(microseconds))
            ours.record(microseconds: microseconds)
        }
        #expect(text(ours) == registry.emitToString())
    }
}
