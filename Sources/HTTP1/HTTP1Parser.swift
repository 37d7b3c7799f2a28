/// The outcome of looking for a complete head in everything buffered so far.
public enum HeadParseResult<Head: Sendable>: Sendable {
    /// No complete head yet, and nothing wrong so far: read more and call again.
    case incomplete
    /// A valid head occupying the first `length` bytes (including skipped empty lines before a
    /// request line); body bytes after it belong to the body decoder.
    case complete(Head, length: Int)
    /// Refused: answer `status` and close the connection.
    case invalid(HTTPParseError)
}

/// Strict, bounded HTTP/1.1 head parsing (RFC 9112). No I/O, no state between calls: the caller passes
/// every byte buffered so far. A call scans at most `maximumHeadBytes`, so its cost is linear in that
/// bound; call it once per read that added bytes, never in a loop without new input.
public enum HTTP1Parser {
    /// Empty lines tolerated before a request line (RFC 9112 §2.2 asks for at least one; some clients
    /// send CRLF after a body).
    static let maximumLeadingEmptyLines = 2

    /// Parses a request head from the start of `buffer`.
    public static func parseRequestHead(_ buffer: UnsafeRawBufferPointer, limits: HTTPLimits = HTTPLimits())
        -> HeadParseResult<RequestHead>
    {
        // Bytes past the head limit can never belong to an acceptable head, so they are never scanned;
        // and once the limit is buffered without a complete head, none can follow.
        let scanned = UnsafeRawBufferPointer(rebasing: buffer.prefix(limits.maximumHeadBytes))
        let needMore: HeadParseResult<RequestHead> =
            buffer.count >= limits.maximumHeadBytes
            ? .invalid(HTTPParseError(status: 431, reason: "head-too-large")) : .incomplete

        var start = 0
        while start < scanned.count && scanned[start] == ASCII.cr {
            guard start + 1 < scanned.count else { return needMore }
            guard scanned[start + 1] == ASCII.lf else { return .invalid(.badRequest("bare-cr")) }
            guard start / 2 < maximumLeadingEmptyLines else { return .invalid(.badRequest("leading-empty-lines")) }
            start += 2
        }
        let view = UnsafeRawBufferPointer(rebasing: scanned[start...])
        let line: RequestLine
        switch RequestLine.parse(view, limits: limits) {
        case .done(let parsed): line = parsed
        case .needMore: return needMore
        case .invalid(let error): return .invalid(error)
        }

        var rules = FieldRules(isRequest: true, version: line.version)
        var fields: [HeaderField] = []
        let end: Int
        switch scanFields(view, from: line.next, limits: limits, rules: &rules, into: &fields) {
        case .done(let next): end = next
        case .needMore: return needMore
        case .invalid(let error): return .invalid(error)
        }

        // RFC 9112 §3.2: an HTTP/1.1 request has exactly one Host (duplicates were refused as they came).
        if line.version == .http11 && rules.host == nil { return .invalid(.badRequest("missing-host")) }
        var host = rules.host
        if let authority = line.authority {
            // §3.2.2 says to ignore Host for absolute-form; refusing a mismatch instead means routing
            // (Host) and the upstream (target) can never disagree about the authority.
            if let host,
                !ASCII.equals(
                    UnsafeRawBufferPointer(rebasing: view[host]), UnsafeRawBufferPointer(rebasing: view[authority]))
            {
                return .invalid(.badRequest("host-mismatch"))
            }
            host = host ?? authority
        }
        let head = RequestHead(
            bytes: Array(view[..<end]), method: line.method, target: line.target, targetForm: line.form,
            version: line.version, fields: fields, framing: rules.declaredFraming ?? .none,
            keepAlive: keepAlive(line.version, rules), expectsContinue: rules.expectsContinue,
            // RFC 9110 §7.8: Upgrade in an HTTP/1.0 request is ignored.
            upgrade: line.version == .http11 && rules.upgradeOption && rules.sawUpgrade, host: host,
            connectionOptions: rules.connectionOptions)
        return .complete(head, length: start + end)
    }

    /// Parses an upstream response head from the start of `buffer`. `isHeadRequest` says whether it
    /// answers a HEAD request (then it has no body whatever its fields say). Every error is a 502.
    public static func parseResponseHead(
        _ buffer: UnsafeRawBufferPointer, isHeadRequest: Bool, limits: HTTPLimits = HTTPLimits()
    ) -> HeadParseResult<ResponseHead> {
        let scanned = UnsafeRawBufferPointer(rebasing: buffer.prefix(limits.maximumHeadBytes))
        let needMore: HeadParseResult<ResponseHead> =
            buffer.count >= limits.maximumHeadBytes
            ? .invalid(HTTPParseError(status: 502, reason: "head-too-large")) : .incomplete
        let line: StatusLine
        switch StatusLine.parse(scanned) {
        case .done(let parsed): line = parsed
        case .needMore: return needMore
        case .invalid(let error): return .invalid(error.asBadGateway)
        }

        var rules = FieldRules(isRequest: false, version: line.version)
        var fields: [HeaderField] = []
        let end: Int
        switch scanFields(scanned, from: line.next, limits: limits, rules: &rules, into: &fields) {
        case .done(let next): end = next
        case .needMore: return needMore
        case .invalid(let error): return .invalid(error.asBadGateway)
        }

        // RFC 9112 §6.3, in order: no body for HEAD, 1xx, 204 and 304; then chunked; then Content-Length;
        // else the body runs until the upstream closes.
        let framing: BodyFraming
        if isHeadRequest || line.status < 200 || line.status == 204 || line.status == 304 {
            framing = .none
        } else {
            framing = rules.declaredFraming ?? .untilClose
        }
        let head = ResponseHead(
            bytes: Array(scanned[..<end]), version: line.version, status: line.status, reason: line.reason,
            fields: fields, framing: framing,
            keepAlive: framing != .untilClose && keepAlive(line.version, rules),
            connectionOptions: rules.connectionOptions)
        return .complete(head, length: end)
    }

    /// Scans field lines from `start` through the empty line, returning the index just past it.
    private static func scanFields(
        _ buffer: UnsafeRawBufferPointer, from start: Int, limits: HTTPLimits, rules: inout FieldRules,
        into fields: inout [HeaderField]
    ) -> ParseStep<Int> {
        fields.reserveCapacity(24)
        var index = start
        while true {
            switch FieldLine.scan(buffer, from: index) {
            case .field(let field, let next):
                guard fields.count < limits.maximumHeaderCount else {
                    return .invalid(HTTPParseError(status: 431, reason: "too-many-fields"))
                }
                if let error = rules.observe(field, in: buffer) { return .invalid(error) }
                fields.append(field)
                index = next
            case .end(let next):
                return .done(next)
            case .needMore:
                return .needMore
            case .invalid(let error):
                return .invalid(error)
            }
        }
    }

    /// RFC 9112 §9.3: HTTP/1.1 persists unless `close`; HTTP/1.0 only with `keep-alive` and no `close`.
    private static func keepAlive(_ version: HTTPVersion, _ rules: FieldRules) -> Bool {
        !rules.close && (version == .http11 || rules.keepAliveOption)
    }
}
