/// An extra field line for a head writer, e.g. an identity header the proxy adds.
public struct ExtraField: Sendable {
    /// The field name; must be a token.
    public let name: String
    /// The field value; must not contain CR, LF, NUL or other controls but HTAB.
    public let value: String
    /// Whether the field can be written without changing the message's structure: a token name that is
    /// not a framing field (the writers own those), and a value without CR, LF or other controls.
    /// Decided once: identity headers are rendered once per cached token, then written per request.
    let isValid: Bool

    /// A field line `name: value`.
    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
        var name = name
        var value = value
        isValid = name.withUTF8 { HeaderName.isValid($0) && !isFramingField($0) }
            && value.withUTF8 { $0.allSatisfy(ASCII.isFieldValueByte) }
    }
}

/// Serializes the request head sent upstream: always HTTP/1.1, CRLF line endings, byte slices appended
/// straight from the parsed head. The received Content-Length and Transfer-Encoding fields are never
/// copied: the writer emits the framing it is given in canonical form (`Content-Length: 10`, never
/// `010`, which a backend parsing with `strtoll(…, 0)` reads as 8).
public enum RequestHeadWriter {
    /// Appends `method SP target SP HTTP/1.1 CRLF`, every field of `head` whose index passes `include`
    /// (framing fields excepted), the field for `framing` (`.none` and `.untilClose` write none), then
    /// `extraFields`, then the empty line. Returns false, appending nothing, if an extra field is invalid
    /// (a value with CR or LF would let it inject lines) or is itself a framing field.
    public static func append(
        _ head: RequestHead, target: String? = nil, framing: BodyFraming, extraFields: [ExtraField] = [],
        to output: inout [UInt8], including include: (Int) -> Bool
    ) -> Bool {
        guard extraFields.allSatisfy(\.isValid) else { return false }
        // A replacement target (the proxy's normalized path) must be a plain origin-form target.
        if let target, !(target.hasPrefix("/") && target.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }) { return false }
        output.append(contentsOf: head.bytes[head.method])
        output.append(ASCII.space)
        if let target { output.append(utf8: target) } else { output.append(contentsOf: head.bytes[head.target]) }
        output.append(literal: " HTTP/1.1\r\n")
        appendFields(of: head, framing: framing, extraFields: extraFields, to: &output, including: include)
        return true
    }
}

/// Serializes the response head sent to the client: always HTTP/1.1, CRLF line endings.
public enum ResponseHeadWriter {
    /// Appends `HTTP/1.1 SP status SP reason CRLF`, every field of `head` whose index passes `include`
    /// (framing fields excepted), the field for `framing`, then `extraFields`, then the empty line.
    /// Returns false, appending nothing, if an extra field is invalid.
    public static func append(
        _ head: ResponseHead, framing: BodyFraming, extraFields: [ExtraField] = [], to output: inout [UInt8],
        including include: (Int) -> Bool
    ) -> Bool {
        guard extraFields.allSatisfy(\.isValid) else { return false }
        output.append(literal: "HTTP/1.1 ")
        // 100...599, so always three digits.
        output.append(UInt8(ascii: "0") + UInt8(head.status / 100))
        output.append(UInt8(ascii: "0") + UInt8(head.status / 10 % 10))
        output.append(UInt8(ascii: "0") + UInt8(head.status % 10))
        output.append(ASCII.space)
        output.append(contentsOf: head.bytes[head.reason])
        output.append(literal: "\r\n")
        appendFields(of: head, framing: framing, extraFields: extraFields, to: &output, including: include)
        return true
    }
}

/// `name: value CRLF` for the chosen fields, the framing field and the extras, then the final CRLF.
private func appendFields(
    of head: some MessageHead, framing: BodyFraming, extraFields: [ExtraField], to output: inout [UInt8],
    including include: (Int) -> Bool
) {
    let bytes = head.bytes
    for (index, field) in head.fields.enumerated() where include(index) && !isFramingField(bytes[field.name]) {
        // A line received as exactly `name: value CRLF` (the usual spelling) is copied whole.
        let line = field.name.lowerBound..<(field.value.upperBound + 2)
        if field.value.lowerBound == field.name.upperBound + 2, bytes[field.name.upperBound + 1] == ASCII.space,
            line.upperBound <= bytes.count, bytes[field.value.upperBound] == ASCII.cr
        {
            output.append(contentsOf: bytes[line])
        } else {
            output.append(contentsOf: bytes[field.name])
            output.append(literal: ": ")
            output.append(contentsOf: bytes[field.value])
            output.append(literal: "\r\n")
        }
    }
    switch framing {
    case .contentLength(let length):
        output.append(literal: "Content-Length: ")
        output.append(decimal: length)
        output.append(literal: "\r\n")
    case .chunked: output.append(literal: "Transfer-Encoding: chunked\r\n")
    case .none, .untilClose: break
    }
    for index in extraFields.indices {  // not `for field in`: a copy retains both strings
        output.append(utf8: extraFields[index].name)
        output.append(literal: ": ")
        output.append(utf8: extraFields[index].value)
        output.append(literal: "\r\n")
    }
    output.append(literal: "\r\n")
}

/// Content-Length or Transfer-Encoding, including `_` lookalikes.
private func isFramingField(_ name: ArraySlice<UInt8>) -> Bool {
    name.withUnsafeBufferPointer { isFramingField($0) }
}

private func isFramingField(_ name: UnsafeBufferPointer<UInt8>) -> Bool {
    // Both framing names are longer than most fields: the length test settles nearly all of them.
    guard name.count == 14 || name.count == 17 else { return false }
    let bytes = UnsafeRawBufferPointer(name)
    return HeaderName.identityEquals(bytes, "content-length") || HeaderName.identityEquals(bytes, "transfer-encoding")
}
