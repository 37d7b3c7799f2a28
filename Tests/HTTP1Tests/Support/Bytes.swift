import HTTP1

/// Test conveniences over byte arrays.
extension [UInt8] {
    init(_ string: String) { self = Array(string.utf8) }

    /// The bytes as a readable Swift-style literal (for failure messages).
    var escaped: String {
        map { byte -> String in
            switch byte {
            case UInt8(ascii: "\r"): "\\r"
            case UInt8(ascii: "\n"): "\\n"
            case UInt8(ascii: "\t"): "\\t"
            case UInt8(ascii: "\\"): "\\\\"
            case 0x20..<0x7F: String(UnicodeScalar(byte))
            default: "\\x" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }.joined()
    }
}

extension String {
    func leftPadded(to width: Int) -> String { String(repeating: "0", count: Swift.max(0, width - count)) + self }
}

func parseRequest(_ bytes: [UInt8], limits: HTTPLimits = HTTPLimits()) -> HeadParseResult<RequestHead> {
    bytes.withUnsafeBytes { HTTP1Parser.parseRequestHead($0, limits: limits) }
}

func parseRequest(_ text: String, limits: HTTPLimits = HTTPLimits()) -> HeadParseResult<RequestHead> {
    parseRequest([UInt8](text), limits: limits)
}

func parseResponse(_ text: String, isHeadRequest: Bool = false, limits: HTTPLimits = HTTPLimits())
    -> HeadParseResult<ResponseHead>
{
    [UInt8](text).withUnsafeBytes { HTTP1Parser.parseResponseHead($0, isHeadRequest: isHeadRequest, limits: limits) }
}

extension HeadParseResult {
    var head: Head? {
        if case .complete(let head, _) = self { return head }
        return nil
    }

    var length: Int? {
        if case .complete(_, let length) = self { return length }
        return nil
    }

    var error: HTTPParseError? {
        if case .invalid(let error) = self { return error }
        return nil
    }

    var isIncomplete: Bool {
        if case .incomplete = self { return true }
        return false
    }
}

/// Feeds a whole chunked body at once; returns the data pieces, the outcome and the bytes consumed.
func decodeChunked(_ bytes: [UInt8], limits: HTTPLimits = HTTPLimits())
    -> (pieces: [[UInt8]], result: Result<ChunkedDecoder.Progress, HTTPParseError>)
{
    var decoder = ChunkedDecoder(limits: limits)
    var pieces: [[UInt8]] = []
    let result = bytes.withUnsafeBytes { decoder.decode($0) { pieces.append([UInt8]($0)) } }
    return (pieces, result)
}
