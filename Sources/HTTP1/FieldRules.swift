/// The fields that decide framing, routing and connection handling, checked as each field line arrives
/// so that an error is reported as early as possible (RFC 9112 §6, RFC 9110 §7.2, §7.6.1, §10.1.1).
/// Errors carry request statuses; the response parser maps them to 502.
struct FieldRules {
    let isRequest: Bool
    let version: HTTPVersion
    private(set) var contentLength: UInt64?
    private(set) var sawTransferEncoding = false
    private(set) var chunked = false
    private(set) var host: Range<Int>?
    private(set) var close = false
    private(set) var keepAliveOption = false
    private(set) var upgradeOption = false
    private(set) var sawUpgrade = false
    private(set) var expectsContinue = false
    private(set) var connectionOptions: [Range<Int>] = []

    init(isRequest: Bool, version: HTTPVersion) {
        self.isRequest = isRequest
        self.version = version
    }

    /// `.chunked` or `.contentLength` as the fields declared (never both: that was refused), or nil.
    var declaredFraming: BodyFraming? {
        if chunked { return .chunked }
        return contentLength.map { .contentLength($0) }
    }

    /// The largest Content-Length accepted: 2^53, so the value is exact in every JSON/JS consumer.
    static let maximumContentLength: UInt64 = 1 << 53

    /// Records `field` (ranges into `buffer`), or says why the head must be refused.
    mutating func observe(_ field: HeaderField, in buffer: UnsafeRawBufferPointer) -> HTTPParseError? {
        let name = UnsafeRawBufferPointer(rebasing: buffer[field.name])
        let value = UnsafeRawBufferPointer(rebasing: buffer[field.value])
        switch name.count {
        case 4 where isRequest && ASCII.equals(name, "host"):
            guard host == nil else { return .badRequest("duplicate-host") }
            guard Authority.isValid(value) else { return .badRequest("invalid-host") }
            host = field.value
        case 6 where isRequest && ASCII.equals(name, "expect"):
            // RFC 9110 §10.1.1: only 100-continue is defined; it is ignored in an HTTP/1.0 request.
            guard ASCII.equals(value, "100-continue") else {
                return HTTPParseError(status: 417, reason: "unsupported-expectation")
            }
            expectsContinue = version == .http11
        case 7 where ASCII.equals(name, "upgrade"):
            sawUpgrade = true
        case 10 where ASCII.equals(name, "connection"):
            return observeConnection(field.value, in: buffer)
        case 14 where ASCII.identityEquals(name, "content-length"):
            guard !name.contains(ASCII.underscore) else { return .badRequest("lookalike-field-name") }
            guard contentLength == nil else { return .badRequest("duplicate-content-length") }
            guard !sawTransferEncoding else { return .badRequest("te-and-cl") }
            guard let length = Self.parseContentLength(value) else {
                return .badRequest("invalid-content-length")
            }
            contentLength = length
        case 17 where ASCII.identityEquals(name, "transfer-encoding"):
            // A backend that maps `_` to `-` would see a second framing field the proxy ignored.
            guard !name.contains(ASCII.underscore) else { return .badRequest("lookalike-field-name") }
            guard !sawTransferEncoding else { return .badRequest("duplicate-transfer-encoding") }
            sawTransferEncoding = true
            // RFC 9112 §6.1: framing of an HTTP/1.0 message with Transfer-Encoding is faulty.
            guard version == .http11 else { return .badRequest("transfer-encoding-in-http10") }
            // RFC 9112 §6.3: Content-Length with Transfer-Encoding is a smuggling signature.
            guard contentLength == nil else { return .badRequest("te-and-cl") }
            guard ASCII.equals(value, "chunked") else {
                return Self.isCodingListEndingInChunked(value)
                    ? HTTPParseError(status: 501, reason: "unsupported-transfer-coding")
                    : .badRequest("invalid-transfer-encoding")
            }
            chunked = true
        default:
            break
        }
        return nil
    }

    /// Connection = #connection-option (RFC 9110 §7.6.1); empty list elements are ignored (§5.6.1).
    private mutating func observeConnection(_ value: Range<Int>, in buffer: UnsafeRawBufferPointer)
        -> HTTPParseError?
    {
        var start = value.lowerBound
        while start <= value.upperBound {
            var stop = start
            while stop < value.upperBound && buffer[stop] != ASCII.comma { stop += 1 }
            let trimmed = buffer[start..<stop].trimmingWhitespace
            let option = UnsafeRawBufferPointer(rebasing: trimmed)
            if !option.isEmpty {
                guard option.allSatisfy(ASCII.isTokenChar) else { return .badRequest("invalid-connection") }
                if ASCII.equals(option, "close") {
                    close = true
                } else if ASCII.equals(option, "keep-alive") {
                    keepAliveOption = true
                } else if ASCII.equals(option, "upgrade") {
                    upgradeOption = true
                } else {
                    connectionOptions.append(trimmed.startIndex..<trimmed.endIndex)
                }
            }
            start = stop + 1
        }
        return nil
    }

    /// Content-Length = 1*DIGIT (RFC 9110 §8.6): no sign, no list, no spaces inside, at most 2^53.
    static func parseContentLength(_ value: UnsafeRawBufferPointer) -> UInt64? {
        guard !value.isEmpty else { return nil }
        var length: UInt64 = 0
        for byte in value {
            guard ASCII.isDigit(byte) else { return nil }
            length = length * 10 + UInt64(byte - UInt8(ascii: "0"))
            guard length <= maximumContentLength else { return nil }
        }
        return length
    }

    /// A well-formed transfer-coding list (tokens, no parameters, no empty elements) that applies chunked
    /// exactly once and last (RFC 9112 §6.1): well-formed, but with codings this proxy does not implement.
    static func isCodingListEndingInChunked(_ value: UnsafeRawBufferPointer) -> Bool {
        let codings = value.split(separator: ASCII.comma, omittingEmptySubsequences: false).map(\.trimmingWhitespace)
        guard codings.count > 1, codings.allSatisfy({ !$0.isEmpty && $0.allSatisfy(ASCII.isTokenChar) }) else {
            return false
        }
        let chunkedPositions = codings.indices.filter {
            ASCII.equals(UnsafeRawBufferPointer(rebasing: codings[$0]), "chunked")
        }
        return chunkedPositions == [codings.count - 1]
    }
}
