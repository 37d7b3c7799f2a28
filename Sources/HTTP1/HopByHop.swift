/// Hop-by-hop fields (RFC 9110 §7.6.1): meaningful for one connection only, so never forwarded.
public enum HopByHop {
    /// The fields that are always hop-by-hop, lowercase.
    public static let fieldNames = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
    ]

    /// Whether `field` of `head` must not be forwarded: its name is in `fieldNames` or listed in the
    /// head's Connection options. Compared with identity normalization (case, and `_` as `-`), so a
    /// `Keep_Alive` lookalike is stripped too.
    @inlinable  // specialized in the caller's module: it runs for every field of every message
    public static func isHopByHop(_ field: HeaderField, in head: some MessageHead) -> Bool {
        let name = head.bytes[field.name]
        return isAlwaysHopByHop(name)
            || head.bytes.withUnsafeBytes { bytes in
                head.connectionOptions.contains { option in
                    HeaderName.identityEquals(
                        UnsafeRawBufferPointer(rebasing: bytes[field.name]),
                        UnsafeRawBufferPointer(rebasing: bytes[option]))
                }
            }
    }

    /// Whether `name` is one of `fieldNames` (identity-normalized comparison).
    public static func isAlwaysHopByHop(_ name: ArraySlice<UInt8>) -> Bool {
        // Runs for every field of every message: the length alone settles most names.
        guard name.count < 64, fieldNameLengths & (1 << name.count) != 0 else { return false }
        return fieldNames.contains { HeaderName.identityEquals(name, $0) }
    }

    /// Bit n is set when some name in `fieldNames` has n bytes.
    private static let fieldNameLengths: UInt64 = fieldNames.reduce(0) { $0 | 1 << $1.utf8.count }
}
