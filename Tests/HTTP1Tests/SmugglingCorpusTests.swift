import Foundation
import HTTP1
import Testing

/// smuggler `te_mutations.json` and PortSwigger `permutations.json`: Transfer-Encoding and
/// Content-Length obfuscations. Every probe must be refused (400/501), or framed without ambiguity:
/// `.chunked` only when the gadget is a syntactically exact `Transfer-Encoding: chunked` field line
/// and no Content-Length is present; `.contentLength`/`.none` only when no line of the gadget even
/// looks like a Transfer-Encoding field. "Looks like" is judged on the raw gadget bytes, independently
/// of the parser: split at every CR or LF, the bytes before the first colon, keeping only ASCII letters
/// and digits, spell `transferencoding` (so `Transfer_Encoding`, `Transfer Encoding`,
/// ` Transfer-Encoding`, `Transfer-Encoding\0` all count).
@Suite("Smuggling corpora")
struct SmugglingCorpusTests {
    @Test("smuggler: 1703 TE gadgets in CL.TE and TE.CL probes, and alone")
    func smuggler() throws {
        let gadgets = try Vectors.object("smuggler/te_mutations.json").objects("gadgets")
        #expect(gadgets.count == 1703)
        var chunked = 0
        for entry in gadgets {
            let gadget = try entry.base64("gadget_utf8_base64")
            for key in ["probe_clte_base64", "probe_tecl_base64"] {
                _ = Self.check(try entry.base64(key), gadget: gadget, hasContentLength: true)
            }
            let alone = [UInt8]("POST /?cb=1 HTTP/1.1\r\n") + gadget + [UInt8]("\r\nHost: example.com\r\n\r\n0\r\n\r\n")
            if Self.check(alone, gadget: gadget, hasContentLength: false) == .chunked { chunked += 1 }
        }
        // The exact spellings (case and OWS variants, and the field next to another line) stay usable.
        #expect(chunked == 10)
    }

    @Test("PortSwigger: 75 TE permutations next to Content-Length, and alone")
    func portSwiggerTransferEncoding() throws {
        let permutations = try Vectors.object("portswigger-http-request-smuggler/permutations.json")
            .objects("te_permutations")
        #expect(permutations.count == 75)
        for permutation in permutations {
            let name = try permutation.string("name")
            let block = try permutation.base64("header_block_base64")
            // Two permutations change the request itself (see their notes in the file).
            var requestLine = [UInt8]("POST / HTTP/1.1\r\n")
            var gadget = block
            switch name {
            case "badwrap":
                requestLine += [UInt8](" Transfer-Encoding: chunked\r\n")
                gadget = [UInt8](" Transfer-Encoding: chunked\r\n") + block
            case "http1.0":
                requestLine = [UInt8]("POST / HTTP/1.0\r\n")
            default:
                break
            }
            let head = requestLine + [UInt8]("Host: example.com\r\n") + block
            let withLength = Self.check(
                head + [UInt8]("\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"), gadget: gadget, hasContentLength: true)
            let alone = Self.check(head + [UInt8]("\r\n\r\n0\r\n\r\n"), gadget: gadget, hasContentLength: false)
            switch name {
            // Exact spellings; `connection` also lists Transfer-Encoding in Connection, which is harmless
            // (it is hop-by-hop anyway, and the proxy re-frames the body).
            case "vanilla", "multiCase", "UPPERCASE", "h1case", "valueprefix1", "nospace1", "spacefix1:9",
                "prefix1:9", "suffix1:9", "tabsuffix", "connection":
                #expect(withLength == nil && alone == .chunked, "\(name)")
            case "removed", "contentEnc", "encode":
                // No Transfer-Encoding field at all: `Transfer-%45ncoding` is an unrelated token.
                #expect(withLength == .contentLength(5) && alone == BodyFraming.none, "\(name)")
            default:
                #expect(withLength == nil && alone == nil, "\(name) must be refused")
            }
        }
    }

    @Test(
        "PortSwigger: 12 Content-Length permutations",
        arguments: [
            ("CL-plus", nil), ("CL-minus", nil), ("CL-pad", .contentLength(5)), ("CL-bigpad", .contentLength(5)),
            ("CL-spacepad", nil), ("CL-e", nil), ("CL-dec", nil), ("CL-commaprefix", nil), ("CL-commasuffix", nil),
            ("CL-error", nil), ("CL-expect", .contentLength(5)), ("CL-expect-obfs", nil),
        ] as [(String, BodyFraming?)])
    func portSwiggerContentLength(_ name: String, _ framing: BodyFraming?) throws {
        let permutations = try Vectors.object("portswigger-http-request-smuggler/permutations.json")
            .objects("cl_permutations")
        #expect(permutations.count == 12)
        let permutation = try #require(permutations.first { $0["name"] as? String == name })
        let request =
            [UInt8]("POST / HTTP/1.1\r\nHost: example.com\r\n") + (try permutation.base64("header_block_base64"))
            + [UInt8]("\r\n\r\n12345")
        let result = parseRequest(request)
        #expect(result.head?.framing == framing, "\(result)")
        if framing == nil {
            // Leading zeros are 1*DIGIT (RFC 9110 §8.6) and accepted; signs, lists, decimals are not.
            #expect([400, 417].contains(result.error?.status ?? 0))
        }
        #expect(result.head?.expectsContinue ?? false == (name == "CL-expect"))
    }

    /// Parses `request` and checks the rule above; returns the framing if accepted, nil if refused.
    @discardableResult
    static func check(_ request: [UInt8], gadget: [UInt8], hasContentLength: Bool) -> BodyFraming? {
        let context = "gadget \(gadget.escaped)"
        switch parseRequest(request) {
        case .incomplete:
            Issue.record("incomplete: \(context)")
            return nil
        case .invalid(let error):
            #expect([400, 501].contains(error.status), "\(context)")
            return nil
        case .complete(let head, _):
            let lines = gadget.split(omittingEmptySubsequences: true) { $0 == 13 || $0 == 10 }
            let teLike = lines.filter(looksLikeTransferEncoding)
            if head.framing == .chunked {
                #expect(!hasContentLength && teLike.count == 1 && teLike.allSatisfy(isExactChunked), "\(context)")
            } else {
                #expect(teLike.isEmpty, "framed by Content-Length or nothing beside a TE-like line: \(context)")
            }
            return head.framing
        }
    }

    static func looksLikeTransferEncoding(_ line: ArraySlice<UInt8>) -> Bool {
        let name = line.prefix { $0 != UInt8(ascii: ":") }
        let letters = name.filter { ($0 | 0x20) >= 0x61 && ($0 | 0x20) <= 0x7A || ($0 >= 0x30 && $0 <= 0x39) }
        return String(decoding: letters, as: UTF8.self).lowercased() == "transferencoding"
    }

    /// `Transfer-Encoding:` OWS `chunked` OWS, ASCII case-insensitive.
    static func isExactChunked(_ line: ArraySlice<UInt8>) -> Bool {
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { return false }
        let value = line[(colon + 1)...].drop { $0 == 32 || $0 == 9 }.reversed().drop { $0 == 32 || $0 == 9 }
        return String(decoding: line[..<colon], as: UTF8.self).lowercased() == "transfer-encoding"
            && String(decoding: value.reversed(), as: UTF8.self).lowercased() == "chunked"
    }
}
