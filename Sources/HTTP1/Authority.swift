/// The authority grammar accepted in Host and absolute-form targets: `host [ ":" port ]` of RFC 3986
/// §3.2.2–3.2.3, narrowed: the host is non-empty, the port has 1–5 digits and is at most 65535, and
/// userinfo (`@`), paths, whitespace and `,` (which list-joining software would split on) are refused.
enum Authority {
    static func isValid(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let end = bytes.count
        var index = 0
        guard index < end else { return false }
        if bytes[index] == UInt8(ascii: "[") {
            // IP-literal: IPv6 (with an optional embedded IPv4 tail) between brackets.
            index += 1
            let start = index
            while index < end && bytes[index] != UInt8(ascii: "]") {
                let byte = bytes[index]
                guard ASCII.hexValue(byte) != nil || byte == ASCII.colon || byte == UInt8(ascii: ".") else {
                    return false
                }
                index += 1
            }
            guard index < end, index > start else { return false }
            index += 1
        } else {
            let start = index
            while index < end && bytes[index] != ASCII.colon {
                if bytes[index] == UInt8(ascii: "%") {
                    // pct-encoded: exactly two HEXDIGs follow.
                    guard index + 2 < end, ASCII.hexValue(bytes[index + 1]) != nil,
                        ASCII.hexValue(bytes[index + 2]) != nil
                    else { return false }
                    index += 3
                    continue
                }
                guard isRegNameByte(bytes[index]) else { return false }
                index += 1
            }
            guard index > start else { return false }
        }
        guard index < end else { return true }
        guard bytes[index] == ASCII.colon else { return false }
        index += 1
        let portStart = index
        var port = 0
        while index < end && ASCII.isDigit(bytes[index]) && index - portStart < 5 {
            port = port * 10 + Int(bytes[index] - UInt8(ascii: "0"))
            index += 1
        }
        return index == end && index > portStart && port <= 65535
    }

    /// unreserved / sub-delims, except `,`.
    private static func isRegNameByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            return true
        case UInt8(ascii: "!"), UInt8(ascii: "$"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("),
            UInt8(ascii: ")"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: ";"), UInt8(ascii: "="):
            return true
        default:
            return false
        }
    }
}
