/// An upstream response head that passed the same field rules as requests, with its framing per
/// RFC 9112 §6.3.
public struct ResponseHead: MessageHead {
    /// A private copy of the head, from the status line through the final CRLF CRLF; all ranges index it.
    public let bytes: [UInt8]
    /// HTTP/1.0 or HTTP/1.1.
    public let version: HTTPVersion
    /// The three-digit status code, 100...599.
    public let status: Int
    /// The reason phrase (possibly empty).
    public let reason: Range<Int>
    /// The field lines in received order.
    public let fields: [HeaderField]
    /// `.none` for HEAD, 1xx, 204 and 304; else `.chunked`, `.contentLength` or `.untilClose`.
    public let framing: BodyFraming
    /// Whether the upstream connection may be reused after this response's body.
    public let keepAlive: Bool
    /// Connection options other than `close`, `keep-alive` and `upgrade` (names of fields to strip).
    public let connectionOptions: [Range<Int>]

    /// A 1xx response: another head follows (or, for 101, the connection becomes a tunnel).
    public var isInformational: Bool { status < 200 }
    /// 101 Switching Protocols: after this head both directions are an opaque byte tunnel.
    public var isSwitchingProtocols: Bool { status == 101 }
}
