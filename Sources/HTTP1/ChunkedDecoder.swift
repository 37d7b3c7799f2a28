/// Incremental, strict decoder of a chunked body (RFC 9112 §7.1). It hands out the chunk data as views
/// into the input (no copy) and stops exactly at the end of the message, so pipelined bytes after it stay
/// with the caller. A chunk-size or trailer line is consumed only once complete: keep the unconsumed
/// tail and present it again, followed by newly read bytes.
public struct ChunkedDecoder: Sendable {
    /// How far one `decode` call got.
    public struct Progress: Sendable, Equatable {
        /// Bytes of the input that were used; the rest must be presented again (or, once finished,
        /// belongs to the next message).
        public let consumed: Int
        /// Whether the last chunk and the trailer section have been read.
        public let finished: Bool

        /// A progress report.
        public init(consumed: Int, finished: Bool) {
            self.consumed = consumed
            self.finished = finished
        }
    }

    private enum State: Sendable {
        case chunkLine
        case data(remaining: UInt64)
        case dataEnd
        case trailers(bytes: Int)
        case finished
        case failed(HTTPParseError)
    }

    private let limits: HTTPLimits
    private var state = State.chunkLine

    /// A decoder at the start of a chunked body.
    public init(limits: HTTPLimits = HTTPLimits()) {
        self.limits = limits
    }

    /// Whether the whole body has been decoded.
    public var isFinished: Bool {
        if case .finished = state { return true }
        return false
    }

    /// Decodes as much of `input` as possible, passing each piece of chunk data to `body`. After an
    /// error the decoder stays failed: answer the error (or drop the connection) and close.
    public mutating func decode(_ input: UnsafeRawBufferPointer, body: (UnsafeRawBufferPointer) -> Void)
        -> Result<Progress, HTTPParseError>
    {
        var index = 0
        while true {
            switch state {
            case .failed(let error):
                return .failure(error)
            case .finished:
                return .success(Progress(consumed: index, finished: true))
            case .chunkLine:
                switch ChunkLine.parse(input, from: index, maximumLength: limits.maximumChunkLineBytes) {
                case .done(let line):
                    index = line.next
                    state = line.size == 0 ? .trailers(bytes: 0) : .data(remaining: line.size)
                case .needMore:
                    return .success(Progress(consumed: index, finished: false))
                case .invalid(let error):
                    return fail(error)
                }
            case .data(let remaining):
                let count = Int(min(remaining, UInt64(input.count - index)))
                guard count > 0 else { return .success(Progress(consumed: index, finished: false)) }
                body(UnsafeRawBufferPointer(rebasing: input[index..<index + count]))
                index += count
                state = remaining == UInt64(count) ? .dataEnd : .data(remaining: remaining - UInt64(count))
            case .dataEnd:
                // Exactly CRLF after the data: no bare LF, no other byte (RFC 9112 §7.1).
                guard index + 1 < input.count else {
                    if index < input.count && input[index] != ASCII.cr { return fail(.badRequest("invalid-chunk-end")) }
                    return .success(Progress(consumed: index, finished: false))
                }
                guard input[index] == ASCII.cr && input[index + 1] == ASCII.lf else {
                    return fail(.badRequest("invalid-chunk-end"))
                }
                index += 2
                state = .chunkLine
            case .trailers(let bytes):
                // The view leaves room for what the limit still allows plus the final empty line.
                let allowance = limits.maximumTrailerBytes - bytes
                let stop = min(input.count, index + allowance + 2)
                let view = UnsafeRawBufferPointer(rebasing: input[index..<stop])
                switch FieldLine.scan(view, from: 0) {
                case .end(let next):
                    index += next
                    state = .finished
                case .field(_, let next):
                    // Trailer fields are validated like header fields, then discarded.
                    guard next <= allowance else { return fail(.badRequest("trailers-too-large")) }
                    index += next
                    state = .trailers(bytes: bytes + next)
                case .needMore:
                    if stop < input.count { return fail(.badRequest("trailers-too-large")) }
                    return .success(Progress(consumed: index, finished: false))
                case .invalid(let error):
                    return fail(error)
                }
            }
        }
    }

    private mutating func fail(_ error: HTTPParseError) -> Result<Progress, HTTPParseError> {
        state = .failed(error)
        return .failure(error)
    }
}

/// `chunk-size [ chunk-ext ] CRLF` with `chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] )` and
/// value = token / quoted-string (RFC 9112 §7.1.1).
struct ChunkLine {
    let size: UInt64
    /// The index just past the CRLF.
    let next: Int

    /// At most 16 hex digits: a size that fits in UInt64 without a lossy parse.
    static let maximumSizeDigits = 16

    /// Parses the line at `start`, reporting a bad byte as soon as it is reached; the line (without its
    /// CRLF) may be at most `maximumLength` bytes.
    static func parse(_ input: UnsafeRawBufferPointer, from start: Int, maximumLength: Int) -> ParseStep<ChunkLine> {
        let end = input.count
        var index = start
        var size: UInt64 = 0
        while index < end, let digit = ASCII.hexValue(input[index]) {
            guard index - start < maximumSizeDigits else { return .invalid(.badRequest("chunk-size-too-large")) }
            size = size << 4 | UInt64(digit)
            index += 1
        }
        guard index > start || index == end else { return .invalid(.badRequest("invalid-chunk-size")) }
        var sawExtension = false
        while true {
            // BWS is allowed only before ";" or "=", never before the CRLF.
            let whitespaceStart = index
            while index < end && ASCII.isWhitespace(input[index]) { index += 1 }
            guard index < end else { break }
            let byte = input[index]
            if byte == ASCII.cr && index == whitespaceStart {
                guard index - start <= maximumLength else { return .invalid(.badRequest("chunk-line-too-long")) }
                guard index + 1 < end else { return .needMore }
                guard input[index + 1] == ASCII.lf else { return .invalid(.badRequest("bare-cr")) }
                return .done(ChunkLine(size: size, next: index + 2))
            }
            guard byte == ASCII.semicolon else {
                return .invalid(.badRequest(sawExtension ? "invalid-chunk-extension" : "invalid-chunk-size"))
            }
            sawExtension = true
            index += 1
            while index < end && ASCII.isWhitespace(input[index]) { index += 1 }
            let nameStart = index
            while index < end && ASCII.isTokenChar(input[index]) { index += 1 }
            guard index < end else { break }
            guard index > nameStart else { return .invalid(.badRequest("invalid-chunk-extension")) }
            let afterName = index
            while index < end && ASCII.isWhitespace(input[index]) { index += 1 }
            guard index < end else { break }
            guard input[index] == ASCII.equals else {
                // No value: what follows must be another ";" (after BWS) or, directly, the CRLF.
                index = afterName
                continue
            }
            index += 1
            while index < end && ASCII.isWhitespace(input[index]) { index += 1 }
            switch scanExtensionValue(input, from: index) {
            case .done(let next): index = next
            case .needMore: index = end
            case .invalid(let error): return .invalid(error)
            }
        }
        guard end - start <= maximumLength else { return .invalid(.badRequest("chunk-line-too-long")) }
        return .needMore
    }

    /// token / quoted-string at `start`; returns the index just past it.
    private static func scanExtensionValue(_ input: UnsafeRawBufferPointer, from start: Int) -> ParseStep<Int> {
        let end = input.count
        guard start < end else { return .needMore }
        var index = start
        guard input[index] == ASCII.quote else {
            while index < end && ASCII.isTokenChar(input[index]) { index += 1 }
            guard index > start || index == end else { return .invalid(.badRequest("invalid-chunk-extension")) }
            return index == end ? .needMore : .done(index)
        }
        index += 1
        while index < end {
            let byte = input[index]
            if byte == ASCII.quote { return .done(index + 1) }
            if byte == ASCII.backslash {
                // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
                guard index + 1 < end else { return .needMore }
                guard ASCII.isFieldValueByte(input[index + 1]) else {
                    return .invalid(.badRequest("invalid-chunk-extension"))
                }
                index += 2
                continue
            }
            guard ASCII.isFieldValueByte(byte) else { return .invalid(.badRequest("invalid-chunk-extension")) }
            index += 1
        }
        return .needMore
    }
}
