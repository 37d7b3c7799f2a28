/// How the body after a head is delimited (RFC 9112 §6.3). Exactly one applies, or the head is rejected.
public enum BodyFraming: Sendable, Equatable {
    /// No body: none declared, or a response to HEAD, or a 1xx, 204 or 304 response.
    case none
    /// Exactly this many bytes follow the head.
    case contentLength(UInt64)
    /// `Transfer-Encoding: chunked`; decode with `ChunkedDecoder`.
    case chunked
    /// Responses only: the body ends when the upstream closes the connection.
    case untilClose
}
