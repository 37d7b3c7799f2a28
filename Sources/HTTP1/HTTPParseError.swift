/// Why bytes were refused. `status` is what the proxy answers before closing the connection:
/// 400, 414, 417, 431, 501 or 505 for requests, and always 502 for an upstream response.
public struct HTTPParseError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The HTTP status code to answer with.
    public let status: Int
    /// A short stable kebab-case code for logs and metric labels, e.g. `obs-fold`, `te-and-cl`.
    public let reason: String

    /// An error with an explicit status; prefer the factories below.
    public init(status: Int, reason: String) {
        self.status = status
        self.reason = reason
    }

    /// `"<status> <reason>"`.
    public var description: String { "\(status) \(reason)" }

    /// 400 Bad Request.
    @inline(never)
    static func badRequest(_ reason: String) -> HTTPParseError { HTTPParseError(status: 400, reason: reason) }

    /// The same reason, answered as 502 Bad Gateway: a malformed upstream response is the gateway's failure.
    var asBadGateway: HTTPParseError { HTTPParseError(status: 502, reason: reason) }
}
