/// Appending text to the byte buffers heads and log lines are built in. `append(contentsOf: s.utf8)`
/// walks a String element by element (~150 instructions for a short one, dozens of times per
/// request); these copy the bytes in one go.
extension [UInt8] {
    /// Appends a literal's UTF-8 bytes.
    @inlinable
    public mutating func append(literal: StaticString) {
        literal.withUTF8Buffer { append(contentsOf: $0) }
    }

    /// Appends a string's UTF-8 bytes.
    @inlinable
    public mutating func append(utf8 string: String) {
        // Native strings, small ones included, always have contiguous UTF-8 (a borrow, no copy).
        if string.utf8.withContiguousStorageIfAvailable({ append(contentsOf: $0) }) == nil {
            append(contentsOf: Array(string.utf8))
        }
    }

    /// Appends `value` in decimal, without going through String.
    public mutating func append(decimal value: UInt64) {
        if value >= 10 { append(decimal: value / 10) }
        append(UInt8(ascii: "0") + UInt8(value % 10))
    }

    public mutating func append(decimal value: Int64) {
        if value < 0 { append(UInt8(ascii: "-")) }
        append(decimal: value.magnitude)
    }

    /// Appends `value` in lowercase hexadecimal.
    public mutating func append(hex value: UInt64) {
        if value >= 16 { append(hex: value / 16) }
        let digit = UInt8(value % 16)
        append(digit < 10 ? UInt8(ascii: "0") + digit : UInt8(ascii: "a") + digit - 10)
    }
}
