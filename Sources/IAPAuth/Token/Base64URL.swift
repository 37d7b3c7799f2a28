/// Unpadded base64url (RFC 7515 §2, RFC 4648 §5), the only encoding a compact JWS allows.
///
/// Decoding is canonical: no padding, no other alphabet, no whitespace, and the unused low bits of
/// the last character must be zero, so every byte string has exactly one accepted encoding.
public enum Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// Maps an ASCII byte to its 6-bit value, or 0xFF when it is not in the alphabet.
    private static let values: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, byte) in alphabet.enumerated() { table[Int(byte)] = UInt8(index) }
        return table
    }()

    /// Decodes `input`, or returns nil when it is not canonical unpadded base64url.
    public static func decode(_ input: UnsafeRawBufferPointer) -> [UInt8]? {
        var valid = false
        let decoded = [UInt8](unsafeUninitializedCapacity: decodedCount(input.count)) { output, initialized in
            if let written = decode(input, into: UnsafeMutableRawBufferPointer(output)) {
                initialized = written
                valid = true
            }
        }
        return valid ? decoded : nil
    }

    /// The most bytes `count` characters decode to.
    static func decodedCount(_ count: Int) -> Int { count * 3 / 4 }

    /// Decodes `input` into `output` (at least `decodedCount(input.count)` bytes) and returns the
    /// bytes written, or nil when it is not canonical unpadded base64url. One pass: the alphabet
    /// check rides along with the decoding, and nothing is allocated (a token's three segments are
    /// decoded on every fresh verification).
    static func decode(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) -> Int? {
        let count = input.count
        guard count % 4 != 1 else { return nil }
        precondition(output.count >= decodedCount(count), "base64url output buffer too small")
        var foreign: UInt8 = 0  // any table entry of 0xFF marks a byte outside the alphabet
        let written = values.withUnsafeBufferPointer { table in
            func value(_ offset: Int) -> UInt32 {
                let entry = table[Int(input[offset])]
                foreign |= entry
                return UInt32(entry)
            }
            var read = 0
            var written = 0
            while count - read >= 4 {  // four characters, three bytes
                let quad = value(read) << 18 | value(read + 1) << 12 | value(read + 2) << 6 | value(read + 3)
                output[written] = UInt8(truncatingIfNeeded: quad >> 16)
                output[written + 1] = UInt8(truncatingIfNeeded: quad >> 8)
                output[written + 2] = UInt8(truncatingIfNeeded: quad)
                read += 4
                written += 3
            }
            switch count - read {
            case 2:
                let last = value(read + 1)
                foreign |= last & 0x0F == 0 ? 0 : 0xFF  // unused low bits must be zero
                output[written] = UInt8(truncatingIfNeeded: value(read) << 2 | last >> 4)
                written += 1
            case 3:
                let last = value(read + 2)
                foreign |= last & 0x03 == 0 ? 0 : 0xFF
                let triple = value(read) << 12 | value(read + 1) << 6 | last
                output[written] = UInt8(truncatingIfNeeded: triple >> 10)
                output[written + 1] = UInt8(truncatingIfNeeded: triple >> 2)
                written += 2
            default: break
            }
            return written
        }
        return foreign & 0x80 == 0 ? written : nil
    }

    public static func decode(_ input: some StringProtocol) -> [UInt8]? {
        var utf8 = Array(input.utf8)
        return utf8.withUnsafeMutableBytes { decode(UnsafeRawBufferPointer($0)) }
    }

    /// True when `input` is canonical base64url, without allocating the decoded bytes.
    static func isCanonical(_ input: UnsafeRawBufferPointer) -> Bool {
        let count = input.count
        if count % 4 == 1 { return false }
        return values.withUnsafeBufferPointer { table in
            var foreign: UInt8 = 0
            for byte in input { foreign |= table[Int(byte)] }
            guard foreign & 0x80 == 0, let last = input.last else { return foreign & 0x80 == 0 }
            let value = table[Int(last)]
            switch count % 4 {
            case 2: return value & 0x0F == 0
            case 3: return value & 0x03 == 0
            default: return true
            }
        }
    }

    public static func encode(_ bytes: some Collection<UInt8>) -> String {
        var output = [UInt8]()
        output.reserveCapacity((bytes.count * 4 + 2) / 3)
        var accumulator: UInt32 = 0
        var bits = 0
        for byte in bytes {
            accumulator = (accumulator << 8) | UInt32(byte)
            bits += 8
            while bits >= 6 {
                bits -= 6
                output.append(alphabet[Int((accumulator >> UInt32(bits)) & 0x3F)])
            }
        }
        if bits > 0 {
            output.append(alphabet[Int((accumulator << UInt32(6 - bits)) & 0x3F)])
        }
        return String(decoding: output, as: UTF8.self)
    }
}
