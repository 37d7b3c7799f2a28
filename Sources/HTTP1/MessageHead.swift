/// What request and response heads share: a private copy of the head bytes and field lines indexing it.
public protocol MessageHead: Sendable {
    /// The head bytes, from the request or status line through the final CRLF CRLF.
    var bytes: [UInt8] { get }
    /// The field lines in received order.
    var fields: [HeaderField] { get }
    /// Connection options other than `close`, `keep-alive` and `upgrade`: names of further hop-by-hop
    /// fields the proxy must strip (RFC 9110 §7.6.1).
    var connectionOptions: [Range<Int>] { get }
}

// Inlinable, so callers in other modules get them specialized for RequestHead or ResponseHead: they
// run for several fields of every message, and through the protocol each `bytes` read was a call.
extension MessageHead {
    /// The name bytes of `field`.
    @inlinable
    public func name(of field: HeaderField) -> ArraySlice<UInt8> { bytes[field.name] }

    /// The (trimmed) value bytes of `field`.
    @inlinable
    public func value(of field: HeaderField) -> ArraySlice<UInt8> { bytes[field.value] }

    /// Whether `field` is named `lowercaseName`, ignoring ASCII case.
    @inlinable
    public func nameEquals(_ field: HeaderField, _ lowercaseName: String) -> Bool {
        HeaderName.equals(bytes[field.name], lowercaseName)
    }

    /// The value of the first field named `lowercaseName` (ASCII case-insensitive), if any.
    @inlinable
    public func value(_ lowercaseName: String) -> ArraySlice<UInt8>? {
        fields.first { nameEquals($0, lowercaseName) }.map { value(of: $0) }  // not `map(value(of:))`: that boxes self
    }

    /// The values of every field named `lowercaseName`, in received order.
    @inlinable
    public func values(named lowercaseName: String) -> [ArraySlice<UInt8>] {
        fields.filter { nameEquals($0, lowercaseName) }.map { value(of: $0) }
    }

    /// The first value named `lowercaseName` as a String (tests and logging; not for the hot path).
    @inlinable
    public func valueString(_ lowercaseName: String) -> String? {
        value(lowercaseName).map { String(decoding: $0, as: UTF8.self) }
    }
}
