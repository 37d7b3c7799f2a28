/// `method SP request-target SP HTTP-version CRLF` (RFC 9112 §3), single spaces only.
struct RequestLine {
    let method: Range<Int>
    let target: Range<Int>
    let form: RequestHead.TargetForm
    /// The authority inside an absolute-form target.
    let authority: Range<Int>?
    let version: HTTPVersion
    /// The index just past the CRLF.
    let next: Int

    /// Parses from index 0, reporting a bad byte as soon as it is reached.
    static func parse(_ buffer: UnsafeRawBufferPointer, limits: HTTPLimits) -> ParseStep<RequestLine> {
        let end = buffer.count
        var index = 0
        while index < end && ASCII.isTokenChar(buffer[index]) { index += 1 }
        guard index < end else { return .needMore }
        guard buffer[index] == ASCII.space, index > 0 else {
            return .invalid(.badRequest(buffer[index] == ASCII.lf ? "bare-lf" : "invalid-method"))
        }
        let method = 0..<index
        // Methods are case-sensitive (RFC 9110 §9.1) but some apps upper-case them (Werkzeug
        // runs `post` as POST), which would walk around a route's `methods: [POST]`: like nginx,
        // refuse lowercase letters in a method.
        if buffer[method].contains(where: { $0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z") }) {
            return .invalid(.badRequest("lowercase-method"))
        }
        // A reverse proxy is no tunnel: CONNECT is not implemented (RFC 9110 §9.3.6, §15.6.2).
        let exact: (UInt8) -> UInt8 = { $0 }
        if ASCII.equals(UnsafeRawBufferPointer(rebasing: buffer[method]), "CONNECT", by: exact) {
            return .invalid(HTTPParseError(status: 501, reason: "connect-not-supported"))
        }
        index += 1

        let targetStart = index
        while index < end && buffer[index] != ASCII.space {
            let byte = buffer[index]
            // RFC 9112 §3.2: the request-target has no fragment; anything outside visible ASCII is
            // not a URI byte (and the version is required: HTTP/0.9 is not spoken).
            if byte == UInt8(ascii: "#") { return .invalid(.badRequest("target-fragment")) }
            if byte == ASCII.cr || byte == ASCII.lf { return .invalid(.badRequest("missing-version")) }
            guard byte > 0x20 && byte < 0x7F else { return .invalid(.badRequest("invalid-target")) }
            index += 1
            if index - targetStart > limits.maximumTargetBytes {
                return .invalid(HTTPParseError(status: 414, reason: "target-too-long"))
            }
        }
        guard index < end else { return .needMore }
        let target = targetStart..<index
        guard !target.isEmpty else { return .invalid(.badRequest("invalid-target")) }
        index += 1

        let version: HTTPVersion
        switch parseVersion(buffer, at: index) {
        case .done(let parsed): version = parsed
        case .needMore: return .needMore
        case .invalid(let error): return .invalid(error)
        }
        index += 8
        guard index < end else { return .needMore }
        guard buffer[index] == ASCII.cr else {
            return .invalid(.badRequest(buffer[index] == ASCII.lf ? "bare-lf" : "invalid-version"))
        }
        guard index + 1 < end else { return .needMore }
        guard buffer[index + 1] == ASCII.lf else { return .invalid(.badRequest("bare-cr")) }

        let form: RequestHead.TargetForm
        var authority: Range<Int>?
        let targetBytes = UnsafeRawBufferPointer(rebasing: buffer[target])
        if targetBytes[0] == ASCII.slash {
            form = .origin
        } else if targetBytes.count == 1 && targetBytes[0] == UInt8(ascii: "*") {
            // RFC 9112 §3.2.4: asterisk-form is only for a server-wide OPTIONS.
            guard ASCII.equals(UnsafeRawBufferPointer(rebasing: buffer[method]), "OPTIONS", by: exact) else {
                return .invalid(.badRequest("asterisk-form-not-options"))
            }
            form = .asterisk
        } else if let schemeLength = absoluteSchemeLength(targetBytes) {
            let start = target.lowerBound + schemeLength
            var stop = start
            while stop < target.upperBound && buffer[stop] != ASCII.slash && buffer[stop] != UInt8(ascii: "?") {
                stop += 1
            }
            guard Authority.isValid(UnsafeRawBufferPointer(rebasing: buffer[start..<stop])) else {
                return .invalid(.badRequest("invalid-target-authority"))
            }
            form = .absolute
            authority = start..<stop
        } else {
            return .invalid(.badRequest("invalid-target"))
        }
        return .done(
            RequestLine(
                method: method, target: target, form: form, authority: authority, version: version,
                next: index + 2))
    }

    /// The length of a leading `http://` or `https://` (ASCII case-insensitive), else nil.
    private static func absoluteSchemeLength(_ target: UnsafeRawBufferPointer) -> Int? {
        for scheme: StaticString in ["http://", "https://"] {
            let length = scheme.utf8CodeUnitCount
            if target.count >= length, ASCII.equals(UnsafeRawBufferPointer(rebasing: target[..<length]), scheme) {
                return length
            }
        }
        return nil
    }
}

/// `HTTP-version SP status-code SP [ reason-phrase ] CRLF` (RFC 9112 §4).
struct StatusLine {
    let version: HTTPVersion
    let status: Int
    let reason: Range<Int>
    /// The index just past the CRLF.
    let next: Int

    /// Parses from index 0; errors carry request-side statuses, which the caller maps to 502.
    static func parse(_ buffer: UnsafeRawBufferPointer) -> ParseStep<StatusLine> {
        let end = buffer.count
        let version: HTTPVersion
        switch parseVersion(buffer, at: 0) {
        case .done(let parsed): version = parsed
        case .needMore: return .needMore
        case .invalid(let error): return .invalid(error)
        }
        // SP 3DIGIT SP: eight bytes from index 8.
        var status = 0
        for index in 8..<13 {
            guard index < end else { return .needMore }
            let byte = buffer[index]
            if index == 8 || index == 12 {
                guard byte == ASCII.space else { return .invalid(.badRequest("invalid-status-line")) }
            } else {
                guard ASCII.isDigit(byte) else { return .invalid(.badRequest("invalid-status")) }
                status = status * 10 + Int(byte - UInt8(ascii: "0"))
            }
        }
        guard (100...599).contains(status) else { return .invalid(.badRequest("invalid-status")) }
        var index = 13
        while index < end && buffer[index] != ASCII.cr {
            let byte = buffer[index]
            if byte == ASCII.lf { return .invalid(.badRequest("bare-lf")) }
            guard ASCII.isFieldValueByte(byte) else { return .invalid(.badRequest("invalid-reason")) }
            index += 1
        }
        guard index + 1 < end else { return .needMore }
        guard buffer[index + 1] == ASCII.lf else { return .invalid(.badRequest("bare-cr")) }
        return .done(StatusLine(version: version, status: status, reason: 13..<index, next: index + 2))
    }
}

/// `HTTP/1.1` or `HTTP/1.0` at `start` (8 bytes). Another `HTTP/DIGIT.DIGIT` is 505; anything else 400.
func parseVersion(_ buffer: UnsafeRawBufferPointer, at start: Int) -> ParseStep<HTTPVersion> {
    let pattern: StaticString = "HTTP/0.0"  // "0" stands for any DIGIT
    var digits: (major: UInt8, minor: UInt8) = (0, 0)
    for offset in 0..<pattern.utf8CodeUnitCount {
        guard start + offset < buffer.count else { return .needMore }
        let byte = buffer[start + offset]
        let expected = pattern.utf8Start[offset]
        if expected == UInt8(ascii: "0") {
            guard ASCII.isDigit(byte) else { return .invalid(.badRequest("invalid-version")) }
            if offset == 5 { digits.major = byte } else { digits.minor = byte }
        } else if byte != expected {
            return .invalid(.badRequest("invalid-version"))
        }
    }
    switch (digits.major, digits.minor) {
    case (UInt8(ascii: "1"), UInt8(ascii: "1")): return .done(.http11)
    case (UInt8(ascii: "1"), UInt8(ascii: "0")): return .done(.http10)
    default: return .invalid(HTTPParseError(status: 505, reason: "unsupported-version"))
    }
}
