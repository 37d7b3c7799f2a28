/// Bounds on everything the parser buffers or scans; exceeding one is a rejection, never a truncation.
public struct HTTPLimits: Sendable {
    /// The whole head, from the request or status line to the final CRLF CRLF (431 when exceeded).
    public var maximumHeadBytes: Int = 32 * 1024
    /// The request-target (414 when exceeded).
    public var maximumTargetBytes: Int = 8 * 1024
    /// Field lines in one head (431 when exceeded).
    public var maximumHeaderCount: Int = 100
    /// A chunk-size line including extensions, excluding its CRLF (400 when exceeded).
    public var maximumChunkLineBytes: Int = 4096
    /// The trailer field lines after the last chunk, excluding the final empty line (400 when exceeded:
    /// 431 cannot be answered once the body has started).
    public var maximumTrailerBytes: Int = 8 * 1024

    /// The defaults above.
    public init() {}
}
