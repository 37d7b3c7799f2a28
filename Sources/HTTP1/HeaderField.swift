/// One field line of a head, as ranges into the head's `bytes` (no per-field allocation).
public struct HeaderField: Sendable, Equatable {
    /// The field name, exactly as received (1*tchar).
    public let name: Range<Int>
    /// The field value with leading and trailing SP/HTAB removed; may be empty.
    public let value: Range<Int>

    /// A field from ranges into a head's bytes.
    public init(name: Range<Int>, value: Range<Int>) {
        self.name = name
        self.value = value
    }
}
