/// Field-name comparisons. Field names are case-insensitive (RFC 9110 §5.1); identity comparisons also
/// treat `_` as `-`, because some backends (CGI-style environments) map both to the same variable, so
/// `X_Forwarded_Email` must be stripped like `X-Forwarded-Email` (the lesson of CVE-2025-64484).
public enum HeaderName {
    /// Whether `name` equals `lowercaseName` ignoring ASCII case (`_` and `-` stay distinct).
    public static func equals(_ name: ArraySlice<UInt8>, _ lowercaseName: String) -> Bool {
        name.withUnsafeBytes { compare($0, lowercaseName, by: ASCII.lowercased) }
    }

    /// Whether two names are the same identity name: ASCII case-insensitive, with `_` equal to `-`.
    public static func identityEquals(_ name: ArraySlice<UInt8>, _ other: String) -> Bool {
        name.withUnsafeBytes { compare($0, other, by: ASCII.normalizedNameByte) }
    }

    public static func identityEquals(_ name: UnsafeRawBufferPointer, _ other: String) -> Bool {
        compare(name, other, by: ASCII.normalizedNameByte)
    }

    /// Two names in raw bytes (e.g. a field and a Connection option of one head).
    public static func identityEquals(_ name: UnsafeRawBufferPointer, _ other: UnsafeRawBufferPointer) -> Bool {
        ASCII.equals(name, other, by: ASCII.normalizedNameByte)
    }

    /// The identity-normalized form of a name: ASCII lowercase, `_` mapped to `-`.
    public static func normalized(_ name: some Sequence<UInt8>) -> [UInt8] {
        name.map(ASCII.normalizedNameByte)
    }

    /// Whether `name` is a valid field name (1*tchar).
    public static func isValid(_ name: some Collection<UInt8>) -> Bool {
        !name.isEmpty && name.allSatisfy(ASCII.isTokenChar)
    }

    /// Compares after mapping both sides through `map`, without allocating. Inlined, so `map` is
    /// too (called per byte, for several names of every field of every message).
    @inline(__always)
    private static func compare(_ name: UnsafeRawBufferPointer, _ other: String, by map: (UInt8) -> UInt8) -> Bool {
        let utf8 = other.utf8
        guard name.count == utf8.count else { return false }
        return utf8.withContiguousStorageIfAvailable { ASCII.equals(name, UnsafeRawBufferPointer($0), by: map) }
            ?? zip(name, utf8).allSatisfy { map($0) == map($1) }
    }
}
