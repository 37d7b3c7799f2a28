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
        guard isCanonical(input) else { return nil }
        let count = input.count
        return [UInt8](unsafeUninitializedCapacity: count * 3 / 4) { output, initialized in
            values.withUnsafeBufferPointer { table in
                var accumulator: UInt32 = 0
                var bits: UInt32 = 0
                var written = 0
                for byte in input {
                    accumulator = (accumulator << 6) | UInt32(table[Int(byte)])
                    bits += 6
                    if bits >= 8 {
                        bits -= 8
                        output[written] = UInt8(truncatingIfNeeded: accumulator >> bits)
                        written += 1
                    }
                }
                initialized = written
            }
        }
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
            for byte in input where table[Int(byte)] == 0xFF { return false }
            guard let last = input.last else { return true }
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
