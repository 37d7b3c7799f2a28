/// Counts down a Content-Length body: how much of each read belongs to the body, and when it ends
/// (bytes after it belong to the next message).
public struct ContentLengthBody: Sendable, Equatable {
    /// Body bytes not yet seen.
    public private(set) var remaining: UInt64

    /// A body of `length` bytes.
    public init(length: UInt64) {
        remaining = length
    }

    /// Whether every body byte has been seen.
    public var isFinished: Bool { remaining == 0 }

    /// Takes up to `available` bytes for the body and returns how many it took.
    public mutating func consume(available: Int) -> Int {
        let taken = Int(min(remaining, UInt64(max(available, 0))))
        remaining -= UInt64(taken)
        return taken
    }
}
