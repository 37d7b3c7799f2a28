import HTTP1
import Testing

/// SplitMix64: a small deterministic generator, so every failure is reproducible from its seed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Random mutations of valid requests: the parsers never crash, never claim more bytes than they were
/// given, never refuse a prefix of what they accept whole, and a chunked body decodes the same however
/// the bytes are split.
@Suite("Mutation fuzzing")
struct FuzzTests {
    static let seeds: [[UInt8]] = [
        "GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: fuzz\r\nAccept: */*\r\n\r\n",
        "POST /upload HTTP/1.1\r\nHost: a:8080\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello",
        "PUT /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;e=\"v\"\r\nhello\r\n0\r\nT: v\r\n\r\n",
        "\r\nGET http://a/b HTTP/1.0\r\nConnection: keep-alive, X-A\r\nX-A: 1\r\n\r\nGET / HTTP/1.1\r\nHost: b\r\n\r\n",
        "GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\u{1}\u{2}",
    ].map { [UInt8]($0) }

    /// Bytes that matter to the grammar, favoured over uniform noise.
    static let interesting: [UInt8] = [13, 10, 32, 9, 0, 58, 44, 59, 34, 92, 35, 48, 65, 95, 45, 127, 128, 255, 11, 12]

    static func mutate(_ input: [UInt8], using random: inout SplitMix64) -> [UInt8] {
        var bytes = input
        for _ in 0..<Int.random(in: 1...4, using: &random) {
            let index = bytes.isEmpty ? 0 : Int.random(in: 0..<bytes.count, using: &random)
            let byte =
                Bool.random(using: &random)
                ? interesting.randomElement(using: &random)! : UInt8.random(in: 0...255, using: &random)
            switch Int.random(in: 0..<5, using: &random) {
            case 0 where !bytes.isEmpty: bytes[index] = byte
            case 1: bytes.insert(byte, at: index)
            case 2 where !bytes.isEmpty: bytes.remove(at: index)
            case 3 where index + 8 <= bytes.count: bytes.insert(contentsOf: bytes[index..<index + 8], at: index)
            default: bytes = Array(bytes.prefix(index))
            }
        }
        return bytes
    }

    @Test("Head parsing: no crash, lengths within the input, no early refusal of an acceptable head")
    func heads() {
        var random = SplitMix64(state: 0x1AB_2026)
        var limits = HTTPLimits()
        limits.maximumHeadBytes = 256
        limits.maximumHeaderCount = 6
        for round in 0..<20_000 {
            let input = Self.mutate(Self.seeds[round % Self.seeds.count], using: &random)
            let result = parseRequest(input, limits: limits)
            switch result {
            case .complete(let head, let length):
                #expect(length <= input.count && head.bytes.count <= length, "\(input.escaped)")
                #expect(
                    head.fields.allSatisfy {
                        $0.name.upperBound <= head.bytes.count && $0.value.upperBound <= head.bytes.count
                    })
                // Every shorter prefix is only "incomplete": early rejection never refuses a good head.
                for end in stride(from: 0, to: length, by: 7) {
                    #expect(parseRequest(Array(input[..<end]), limits: limits).isIncomplete, "\(input.escaped) @\(end)")
                }
                #expect(parseRequest(head.bytes, limits: limits).length == head.bytes.count)
            case .invalid(let error):
                #expect([400, 414, 417, 431, 501, 505].contains(error.status))
                // Once refused, more bytes cannot make it acceptable.
                #expect(parseRequest(input + [UInt8]("\r\n\r\n"), limits: limits).error != nil, "\(input.escaped)")
            case .incomplete:
                #expect(input.count < limits.maximumHeadBytes)
            }
            _ = input.withUnsafeBytes { HTTP1Parser.parseResponseHead($0, isHeadRequest: false, limits: limits) }
        }
    }

    @Test("Chunked decoding: no crash, consumed within the input, same result for any split")
    func chunked() {
        var random = SplitMix64(state: 0xC0FFEE)
        let body = [UInt8]("5;a=b\r\nhello\r\n1 ; x = \"q\\\"\"\r\n!\r\n0\r\nTrailer: x\r\n\r\nNEXT")
        for _ in 0..<5_000 {
            let input = Self.mutate(body, using: &random)
            let (pieces, whole) = decodeChunked(input)
            if case .success(let progress) = whole { #expect(progress.consumed <= input.count) }
            let step = Int.random(in: 1...9, using: &random)
            let (data, split) = decodeIncrementally(input, step: step)
            switch whole {
            case .failure(let error):
                #expect(throws: error) { try split.get() }
            case .success(let progress):
                if progress.finished {
                    #expect((try? split.get()) == progress.consumed, "\(input.escaped)")
                    #expect(data == pieces.flatMap { $0 })
                }
            }
        }
    }
}
