/// Byte classes of RFC 9110 §5.6 and RFC 9112, as small switches (no tables to initialise).
enum ASCII {
    static let cr = UInt8(ascii: "\r")
    static let lf = UInt8(ascii: "\n")
    static let space = UInt8(ascii: " ")
    static let tab = UInt8(ascii: "\t")
    static let colon = UInt8(ascii: ":")
    static let comma = UInt8(ascii: ",")
    static let semicolon = UInt8(ascii: ";")
    static let equals = UInt8(ascii: "=")
    static let quote = UInt8(ascii: "\"")
    static let backslash = UInt8(ascii: "\\")
    static let slash = UInt8(ascii: "/")
    static let dash = UInt8(ascii: "-")
    static let underscore = UInt8(ascii: "_")

    /// tchar: the bytes of a token (method, field name, transfer coding, Connection option):
    /// `!#$%&'*+-.^_`|~`, DIGIT, ALPHA. One bit per byte below 0x80, as two masks (checked in tests).
    @inline(__always)
    static func isTokenChar(_ byte: UInt8) -> Bool {
        let low: UInt64 = 0x03FF_6CFA_0000_0000
        let high: UInt64 = 0x57FF_FFFF_C7FF_FFFE
        let mask = byte < 64 ? low : (byte < 128 ? high : 0)
        return (mask >> UInt64(byte & 63)) & 1 == 1
    }

    /// field-vchar / SP / HTAB: what a field value may contain (obs-text included, CTLs and DEL not).
    @inline(__always)
    static func isFieldValueByte(_ byte: UInt8) -> Bool {
        byte == tab || (byte >= 0x20 && byte != 0x7F)
    }

    /// Whether all eight bytes of `word` are visible or SP (VCHAR, obs-text, SP; no control byte,
    /// no DEL). Two "has a byte less than n" tests (Bit Twiddling Hacks, exact for n ≤ 0x80): bytes
    /// below 0x20, and zero bytes of `word ^ 0x7F…7F`, i.e. DEL. Byte order does not matter.
    @inline(__always)
    static func allVisibleOrSpace(_ word: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highBits: UInt64 = 0x8080_8080_8080_8080
        let control = (word &- ones &* 0x20) & ~word & highBits
        let delXor = word ^ (ones &* 0x7F)
        let isDEL = (delXor &- ones) & ~delXor & highBits
        return control | isDEL == 0
    }

    /// OWS: optional whitespace, SP or HTAB.
    @inline(__always)
    static func isWhitespace(_ byte: UInt8) -> Bool { byte == space || byte == tab }

    @inline(__always)
    static func isDigit(_ byte: UInt8) -> Bool { byte &- UInt8(ascii: "0") < 10 }

    /// The value of a HEXDIG, or nil.
    @inline(__always)
    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    @inline(__always)
    static func lowercased(_ byte: UInt8) -> UInt8 {
        byte &- UInt8(ascii: "A") < 26 ? byte | 0x20 : byte
    }

    /// Identity-name normalization (CVE-2025-64484): lowercase, and `_` is the same as `-`.
    @inline(__always)
    static func normalizedNameByte(_ byte: UInt8) -> UInt8 {
        byte == underscore ? dash : lowercased(byte)
    }

    /// Whether `bytes` and `other` are equal once both are mapped through `map` (ASCII lowercasing by
    /// default; `normalizedNameByte` for identity comparisons).
    @inline(__always)
    static func equals(
        _ bytes: UnsafeRawBufferPointer, _ other: UnsafeRawBufferPointer, by map: (UInt8) -> UInt8 = lowercased
    ) -> Bool {
        guard bytes.count == other.count else { return false }
        for index in 0..<bytes.count where map(bytes[index]) != map(other[index]) { return false }
        return true
    }

    /// `equals(_:_:by:)` against a constant.
    @inline(__always)
    static func equals(
        _ bytes: UnsafeRawBufferPointer, _ constant: StaticString, by map: (UInt8) -> UInt8 = lowercased
    ) -> Bool {
        equals(bytes, UnsafeRawBufferPointer(start: constant.utf8Start, count: constant.utf8CodeUnitCount), by: map)
    }

    /// Whether `bytes` equal `constant` under identity normalization (case, and `_` as `-`).
    @inline(__always)
    static func identityEquals(_ bytes: UnsafeRawBufferPointer, _ constant: StaticString) -> Bool {
        equals(bytes, constant, by: normalizedNameByte)
    }
}

extension Slice where Base == UnsafeRawBufferPointer {
    /// The slice without leading and trailing OWS.
    var trimmingWhitespace: Slice {
        var first = startIndex
        var last = endIndex
        while first < last && ASCII.isWhitespace(base[first]) { first += 1 }
        while last > first && ASCII.isWhitespace(base[last - 1]) { last -= 1 }
        return base[first..<last]
    }
}
