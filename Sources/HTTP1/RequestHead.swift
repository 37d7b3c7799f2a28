/// A request head that passed every rule of RFC 9112 and this module's stricter policy; its body
/// framing is unambiguous.
public struct RequestHead: MessageHead {
    /// The shape of the request-target (RFC 9112 §3.2). Authority-form (CONNECT) is never accepted.
    public enum TargetForm: Sendable, Equatable {
        /// `/path?query`.
        case origin
        /// `http://authority/path?query` or `https://…`; its authority equals the Host field.
        case absolute
        /// `*`, only with OPTIONS.
        case asterisk
    }

    /// A private copy of the head, from the request line through the final CRLF CRLF; all ranges index it.
    public let bytes: [UInt8]
    /// The method token.
    public let method: Range<Int>
    /// The request-target, exactly as received (visible ASCII, no fragment).
    public let target: Range<Int>
    /// The form of `target`.
    public let targetForm: TargetForm
    /// HTTP/1.0 or HTTP/1.1.
    public let version: HTTPVersion
    /// The field lines in received order.
    public let fields: [HeaderField]
    /// `.none`, `.contentLength` or `.chunked`.
    public let framing: BodyFraming
    /// Whether the connection may carry another request after this one (RFC 9112 §9.3).
    public let keepAlive: Bool
    /// `Expect: 100-continue` on an HTTP/1.1 request.
    public let expectsContinue: Bool
    /// An HTTP/1.1 request whose Connection lists `upgrade` and that carries an Upgrade field.
    public let upgrade: Bool
    /// The authority the request is for: the Host value (equal to an absolute-form target's authority),
    /// or the target's authority for an HTTP/1.0 request without Host; nil for HTTP/1.0 with neither.
    public let host: Range<Int>?
    /// Connection options other than `close`, `keep-alive` and `upgrade` (names of fields to strip).
    public let connectionOptions: [Range<Int>]

    /// The method as a String (tests and logging).
    public var methodString: String { String(decoding: bytes[method], as: UTF8.self) }
    /// The request-target as a String (tests and logging).
    public var targetString: String { String(decoding: bytes[target], as: UTF8.self) }
    /// The authority as a String (tests and logging).
    public var hostString: String? { host.map { String(decoding: bytes[$0], as: UTF8.self) } }
    /// Whether the method is HEAD: pass this to `parseResponseHead`, since a response to HEAD has no body.
    public var isHeadMethod: Bool { bytes[method].elementsEqual("HEAD".utf8) }
}
