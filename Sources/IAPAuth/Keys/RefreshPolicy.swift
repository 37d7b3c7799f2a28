/// When to fetch the key set again: pure arithmetic on seconds, so it is tested without clocks.
public struct RefreshPolicy: Sendable {
    /// Bounds on how long a fetched set is fresh, whatever `Cache-Control` says.
    public var minimumLifetime: Double = 300
    public var maximumLifetime: Double = 86_400
    /// Fraction of the lifetime after which to refresh, so a new set arrives before the old expires.
    public var refreshAt: Double = 0.8
    /// Retry delays after failures: `retryBase × 2^(failures−1)`, capped, with ±20 % jitter.
    public var retryBase: Double = 1
    public var retryMaximum: Double = 300
    /// Shortest gap between fetches triggered by unknown kids: a flood of random kids costs at
    /// most one fetch per interval.
    public var unknownKidInterval: Double = 15

    public init() {}

    /// Seconds the response stays fresh: max-age minus Age, clamped to the bounds.
    public func lifetime(maxAge: Int64?, age: Int64) -> Double {
        guard let maxAge else { return minimumLifetime }
        return min(max(Double(maxAge - age), minimumLifetime), maximumLifetime)
    }

    /// Delay until the next scheduled fetch after a successful one.
    public func refreshDelay(lifetime: Double) -> Double { lifetime * refreshAt }

    /// Delay before retrying after `failures` consecutive failures; `jitter` is in [-1, 1].
    public func retryDelay(failures: Int, jitter: Double) -> Double {
        let exponential = retryBase * Double(1 << min(max(failures - 1, 0), 20))
        return min(exponential, retryMaximum) * (1 + 0.2 * jitter)
    }
}
