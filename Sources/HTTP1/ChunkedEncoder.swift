/// Writes a chunked body (RFC 9112 §7.1): used when forwarding a chunked body after decoding it.
public enum ChunkedEncoder {
    /// Appends `hex-size CRLF data CRLF`; nothing for empty data, which would read as the last chunk.
    public static func appendChunk(_ data: UnsafeRawBufferPointer, to output: inout [UInt8]) {
        guard !data.isEmpty else { return }
        let size = UInt64(data.count)
        var shift = (UInt64.bitWidth - size.leadingZeroBitCount - 1) / 4 * 4
        while shift >= 0 {
            let digit = UInt8(truncatingIfNeeded: size >> UInt64(shift)) & 0xF
            output.append(digit < 10 ? UInt8(ascii: "0") + digit : UInt8(ascii: "a") + digit - 10)
            shift -= 4
        }
        output.append(ASCII.cr)
        output.append(ASCII.lf)
        output.append(contentsOf: data)
        output.append(ASCII.cr)
        output.append(ASCII.lf)
    }

    /// Appends the last chunk and an empty trailer section: `0 CRLF CRLF`.
    public static func appendLastChunk(to output: inout [UInt8]) {
        output.append(contentsOf: "0\r\n\r\n".utf8)
    }
}
