/// A request path normalized so that a rule checked against it cannot be side-stepped by another
/// spelling of the same resource (RFC 3986 §6.2.2), and forwarded upstream in that same form.
///
/// - percent-encoded unreserved characters are decoded (`/%61dmin` is `/admin`), other escapes are
///   kept with upper-case hex;
/// - `.` and `..` segments are resolved, also when written `%2e` or with matrix parameters (`..;x`,
///   which Tomcat-style servers treat as `..`); `..` above the root is refused;
/// - repeated slashes are merged;
/// - refused outright: an encoded `/` (unless the route allows it), an encoded or raw `\`, `%00`
///   and other encoded control bytes, and malformed escapes.
///
/// Routes match on `matchKey`: the path lowercased and with `;parameters` removed from each
/// segment, so `/ADMIN` and `/admin;x` meet the rule for `/admin` (the broader match is the safe
/// one: it can only make a stricter rule apply).
public struct RequestPath: Sendable, Equatable {
    /// The normalized path, as forwarded upstream.
    public let path: String
    /// The query string without `?`, unchanged; nil when there is none.
    public let query: String?
    /// What routes are matched against.
    public let matchKey: String
    /// The path kept an encoded slash (`%2F`), which only routes that allow it accept.
    public let hasEncodedSlash: Bool

    /// Why a path was refused (400): stable codes for the log.
    public enum Failure: String, Error, Sendable {
        case notOriginForm = "path-not-origin-form"
        case invalidEscape = "path-invalid-escape"
        case encodedControl = "path-encoded-control"
        case backslash = "path-backslash"
        case escapesRoot = "path-escapes-root"
    }

    /// The path as it goes upstream, with its query.
    public var target: String { query.map { path + "?" + $0 } ?? path }

    public static func normalize(_ target: some Collection<UInt8>) -> Result<RequestPath, Failure> {
        normalize(ArraySlice(target))
    }

    /// The same on the request head's own bytes (no copy: this runs on every request).
    public static func normalize(_ bytes: ArraySlice<UInt8>) -> Result<RequestPath, Failure> {
        if bytes.count == 1 && bytes.first == UInt8(ascii: "*") {
            return .success(RequestPath(path: "*", query: nil, matchKey: "*", hasEncodedSlash: false))
        }
        let queryStart = bytes.firstIndex(of: UInt8(ascii: "?"))
        let rawPath = bytes[..<(queryStart ?? bytes.endIndex)]
        let query = queryStart.map { String(decoding: bytes[(bytes.index(after: $0))...], as: UTF8.self) }
        guard rawPath.first == UInt8(ascii: "/") else { return .failure(.notOriginForm) }
        if let plain = plainPath(rawPath) {
            return .success(RequestPath(path: plain.path, query: query, matchKey: plain.matchKey, hasEncodedSlash: false))
        }
        return normalizeInFull(rawPath, query: query)
    }

    /// The common case: a path with nothing to decode, resolve, merge or strip (letters, digits,
    /// `-._~` and single slashes, no `.` or `..` segment) is its own normalized form; its match
    /// key is it lowercased. Nil for anything else, which `normalizeInFull` handles.
    static func plainPath(_ rawPath: ArraySlice<UInt8>) -> (path: String, matchKey: String)? {
        func isPlainSegment(_ segment: ArraySlice<UInt8>) -> Bool {
            !segment.isEmpty && !segment.elementsEqual([UInt8(ascii: ".")])
                && !segment.elementsEqual([UInt8(ascii: "."), UInt8(ascii: ".")])
        }
        var segmentStart = rawPath.startIndex + 1
        var hasUppercase = false
        for index in segmentStart..<rawPath.endIndex {
            switch rawPath[index] {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"),
                UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                continue
            case UInt8(ascii: "A")...UInt8(ascii: "Z"):
                hasUppercase = true
            case UInt8(ascii: "/"):
                guard isPlainSegment(rawPath[segmentStart..<index]) else { return nil }
                segmentStart = index + 1
            default:
                return nil
            }
        }
        let last = rawPath[segmentStart...]  // empty after a trailing slash (or for "/")
        guard last.isEmpty || isPlainSegment(last) else { return nil }
        let path = String(decoding: rawPath, as: UTF8.self)
        return (path, hasUppercase ? path.lowercased() : path)
    }

    /// Every rule of the type's description, segment by segment.
    static func normalizeInFull(_ rawPath: ArraySlice<UInt8>, query: String?) -> Result<RequestPath, Failure> {
        // Decode escapes segment by segment (an encoded "/" must not create a segment boundary).
        var segments: [[UInt8]] = []
        var hasEncodedSlash = false
        for rawSegment in rawPath.dropFirst().split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
            var segment: [UInt8] = []
            var index = rawSegment.startIndex
            while index < rawSegment.endIndex {
                let byte = rawSegment[index]
                if byte == UInt8(ascii: "\\") { return .failure(.backslash) }
                guard byte == UInt8(ascii: "%") else {
                    segment.append(byte)
                    index += 1
                    continue
                }
                guard rawSegment.distance(from: index, to: rawSegment.endIndex) >= 3,
                    let high = hexValue(rawSegment[index + 1]), let low = hexValue(rawSegment[index + 2])
                else { return .failure(.invalidEscape) }
                let decoded = high << 4 | low
                switch decoded {
                case _ where isUnreserved(decoded): segment.append(decoded)
                case UInt8(ascii: "\\"): return .failure(.backslash)
                case 0..<0x20, 0x7F: return .failure(.encodedControl)
                default:
                    if decoded == UInt8(ascii: "/") { hasEncodedSlash = true }
                    segment += [UInt8(ascii: "%"), hexDigit(high), hexDigit(low)]
                }
                index += 3
            }
            segments.append(segment)
        }

        // Resolve dot segments and merge empty ones; keep a trailing slash.
        let trailingSlash = segments.last?.isEmpty == true && !segments.isEmpty
        var resolved: [[UInt8]] = []
        for segment in segments {
            switch withoutParameters(segment) {
            case []: continue
            case [UInt8(ascii: ".")]: continue
            case [UInt8(ascii: "."), UInt8(ascii: ".")]:
                guard resolved.popLast() != nil else { return .failure(.escapesRoot) }
            default: resolved.append(segment)
            }
        }
        var path = "/" + resolved.map { String(decoding: $0, as: UTF8.self) }.joined(separator: "/")
        if trailingSlash && !resolved.isEmpty { path += "/" }
        let matchKey = "/" + resolved.map { String(decoding: withoutParameters($0), as: UTF8.self).lowercased() }
            .joined(separator: "/") + (trailingSlash && !resolved.isEmpty ? "/" : "")
        return .success(RequestPath(path: path, query: query, matchKey: matchKey, hasEncodedSlash: hasEncodedSlash))
    }

    /// A segment up to its first `;` (RFC 3986 §3.3 path parameters).
    private static func withoutParameters(_ segment: [UInt8]) -> [UInt8] {
        guard let semicolon = segment.firstIndex(of: UInt8(ascii: ";")) else { return segment }
        return Array(segment[..<semicolon])
    }

    private static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
            UInt8(ascii: "~"):
            return true
        default: return false
        }
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    private static func hexDigit(_ value: UInt8) -> UInt8 {
        value < 10 ? UInt8(ascii: "0") + value : UInt8(ascii: "A") + value - 10
    }
}
