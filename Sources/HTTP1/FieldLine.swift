/// One step of scanning field lines (RFC 9112 §5): a field, the empty line ending the section, or why not.
enum FieldLine {
    /// A valid field line; `next` is the index just past its CRLF.
    case field(HeaderField, next: Int)
    /// The empty line (CRLF) ending the field section; `next` is the index just past it.
    case end(next: Int)
    /// The line is not complete yet.
    case needMore
    case invalid(HTTPParseError)

    /// Scans the line starting at `start`. Every byte is checked as it is reached, so a bad byte is
    /// reported even before the line is complete.
    static func scan(_ buffer: UnsafeRawBufferPointer, from start: Int) -> FieldLine {
        let end = buffer.count
        guard start < end else { return .needMore }
        let first = buffer[start]
        if first == ASCII.cr {
            guard start + 1 < end else { return .needMore }
            return buffer[start + 1] == ASCII.lf ? .end(next: start + 2) : .invalid(.badRequest("bare-cr"))
        }
        if first == ASCII.lf { return .invalid(.badRequest("bare-lf")) }
        // A line starting with whitespace is obs-fold (or whitespace after the start line): RFC 9112
        // §5.2 and §2.2 allow rejecting it, and unfolding would be "fixing up" input.
        if ASCII.isWhitespace(first) { return .invalid(.badRequest("obs-fold")) }
        if first == ASCII.colon { return .invalid(.badRequest("empty-field-name")) }

        var index = start
        while index < end && ASCII.isTokenChar(buffer[index]) { index += 1 }
        guard index < end else { return .needMore }
        switch buffer[index] {
        case ASCII.colon: break
        // RFC 9112 §5.1: no whitespace between name and colon; a server MUST reject it.
        case ASCII.space, ASCII.tab: return .invalid(.badRequest("whitespace-before-colon"))
        case ASCII.cr, ASCII.lf: return .invalid(.badRequest("missing-colon"))
        default: return .invalid(.badRequest("invalid-field-name"))
        }
        let name = start..<index
        index += 1
        while index < end && ASCII.isWhitespace(buffer[index]) { index += 1 }
        let valueStart = index
        var valueEnd = index  // just past the last non-whitespace byte: trailing OWS is not part of the value
        while index < end {
            // The common case first, eight bytes at a time: words of visible bytes (VCHAR or
            // obs-text) and spaces that do not end in a space (values such as an IAP assertion run
            // to hundreds of bytes). Then the next word, at most, byte by byte: the line's end, a
            // tab, trailing whitespace, or a byte to refuse.
            while end - index >= 8, buffer[index + 7] != ASCII.space,
                ASCII.allVisibleOrSpace(buffer.loadUnaligned(fromByteOffset: index, as: UInt64.self))
            {
                index += 8
                valueEnd = index
            }
            for _ in 0..<min(8, end - index) {
                let byte = buffer[index]
                index += 1
                if byte > ASCII.space && byte != 0x7F {
                    valueEnd = index
                } else if byte == ASCII.cr {
                    guard index < end else { return .needMore }
                    guard buffer[index] == ASCII.lf else { return .invalid(.badRequest("bare-cr")) }
                    return .field(HeaderField(name: name, value: valueStart..<valueEnd), next: index + 1)
                } else if byte == ASCII.lf {
                    return .invalid(.badRequest("bare-lf"))
                } else if !ASCII.isWhitespace(byte) {
                    return .invalid(.badRequest("invalid-field-value"))
                }
            }
        }
        return .needMore
    }
}
