import Foundation
import HTTP1
import Testing

/// `llhttp/llhttp_cases.json`: every request record, driven through the head parser and body decoders
/// the way the proxy drives a connection.
///
/// - `expect_error == null`: we accept the same number of messages, with the same methods, framing
///   (`flags`/`content_length` of each "headers complete") and body data pieces. llhttp's "pause" on an
///   upgrade (code 22) and "data after Connection: close" (code 5) are acceptances that end the
///   connection, and must end ours the same way.
/// - any other error: we refuse.
/// - `request-lenient-*`: inputs llhttp takes only in a lenient mode; we refuse them, or (keep-alive
///   leniency) close the connection before reading the bytes lenient mode went on to parse.
/// - One systematic difference, checked rather than listed: llhttp does not require Host, RFC 9112 §3.2
///   does ("A server MUST respond with a 400 … to any HTTP/1.1 request message that lacks a Host header
///   field"). A record refused only for `missing-host` is re-run with a Host line inserted after each
///   such request line (the absolute-form authority, else `example.com`), and that run must then match
///   llhttp's verdict.
@Suite("llhttp corpus")
struct LLHTTPCorpusTests {
    enum Pin {
        case rejected(String)
        case accepted
    }

    /// Where our strictness intentionally differs from llhttp's default mode, by record title.
    static let pinned: [String: (pin: Pin, why: String)] = [
        "Methods / REPORT request / CONNECT request":
            (
                .rejected("connect-not-supported"),
                "RFC 9110 §9.3.6: CONNECT asks for a tunnel; a reverse proxy is none (501)"
            ),
        "Methods / REPORT request / CONNECT request with CAPS":
            (.rejected("connect-not-supported"), "RFC 9110 §9.3.6: as above"),
        "Methods / REPORT request / CONNECT with body":
            (.rejected("connect-not-supported"), "RFC 9110 §9.3.6: as above"),
        "URI / Underscore in hostname":
            (.rejected("connect-not-supported"), "RFC 9110 §9.3.6: a CONNECT request, as above"),
        "Methods / REPORT request / M-SEARCH request":
            (.rejected("asterisk-form-not-options"), "RFC 9112 §3.2.4: asterisk-form is only for server-wide OPTIONS"),
        "Methods / REPORT request / SOURCE request with ICE":
            (.rejected("invalid-version"), "RFC 9112 §2.3: HTTP-version is `HTTP/` DIGIT.DIGIT; ICE is not HTTP"),
        "Methods / REPORT request / OPTIONS request with RTSP":
            (.rejected("invalid-version"), "RFC 9112 §2.3: RTSP is not HTTP"),
        "Methods / REPORT request / ANNOUNCE request with RTSP":
            (.rejected("invalid-version"), "RFC 9112 §2.3: RTSP is not HTTP"),
        "Sample requests / No HTTP version":
            (.rejected("missing-version"), "RFC 9112 §3: request-line requires HTTP-version; HTTP/0.9 is not spoken"),
        "URI / Fragment in URI":
            (.rejected("target-fragment"), "RFC 9112 §3.2: a request-target has no fragment"),
        "Transfer-Encoding header / POST with `chunked` as last transfer-encoding":
            (.rejected("target-fragment"), "RFC 9112 §3.2: `#hey` in the target (and gzip-style codings are 501)"),
        "Transfer-Encoding header / POST with `chunked` as last transfer-encoding (multiple headers)":
            (.rejected("target-fragment"), "RFC 9112 §3.2: `#hey` in the target (and two TE fields are refused)"),
        "URI / `host:port` and basic auth":
            (
                .rejected("invalid-target-authority"),
                "RFC 9110 §4.2.4: userinfo in an http(s) URI is treated as an error"
            ),
        "Invalid requests / ICE protocol and GET method / HTTP protocol and ANNOUNCE method":
            (.accepted, "RFC 9110 §9.1: any token is a method; an unknown one is the origin's to refuse"),
        "Invalid requests / ICE protocol and GET method / Invalid method":
            (.accepted, "RFC 9110 §9.1: MKCOLA is a token; an unknown method is the origin's to refuse"),
    ]

    /// llhttp error codes that are not refusals: a pause on Upgrade, and bytes after `close`.
    static let upgradePause = 22
    static let dataAfterClose = 5

    struct Record {
        let title: String
        let type: String
        let input: [UInt8]
        let errorCode: Int?
        let messagesCompleted: Int
        /// (flags, content_length) of each "headers complete".
        let heads: [(flags: Int, contentLength: UInt64)]
        let methods: [String]
        let bodyPieces: [Int]
        let skipBody: Bool

        init(_ record: [String: Any]) throws {
            title = try record.string("title")
            type = try record.string("type")
            input = try record.base64("input_base64")
            errorCode = (record["expect_error"] as? [String: Any])?["code"] as? Int
            messagesCompleted = record["messages_completed"] as? Int ?? 0
            heads = try (record["headers_complete"] as? [String] ?? []).map { line in
                guard let flags = Int(try Self.field("flags", in: line), radix: 16),
                    let length = UInt64(try Self.field("content_length", in: line))
                else { throw VectorError("bad headers-complete line \(line)") }
                return (flags, length)
            }
            let log = record["expected_log"] as? [String] ?? []
            methods = log.compactMap { line in
                line.range(of: "span[method]=\"").map { String(line[$0.upperBound...].dropLast()) }
            }
            bodyPieces = try log.filter { $0.contains("span[body]") }.map { Int(try Self.field("len", in: $0))! }
            skipBody = (record["meta"] as? [String: Any])?["skipBody"] as? Bool ?? false
        }

        /// The value after `name=` up to the next space.
        static func field(_ name: String, in line: String) throws -> String {
            guard let range = line.range(of: " \(name)=") else { throw VectorError("no \(name) in \(line)") }
            return String(line[range.upperBound...].prefix { $0 != " " })
        }
    }

    @Test("Every request record gets llhttp's verdict, our pinned one, or (Host) the RFC's")
    func corpus() throws {
        let records = try Vectors.object("llhttp/llhttp_cases.json").objects("records")
            .filter { ($0["type"] as? String)?.hasPrefix("request") == true }
            .map(Record.init)
        #expect(records.filter { $0.type == "request" }.count == 134)
        var unusedPins = Set(Self.pinned.keys)
        var hostAdapted = 0
        for record in records {
            var input = record.input
            var transcript = Transcript(input, skipBody: record.skipBody)
            while transcript.rejection?.reason == "missing-host" {
                input = Transcript.insertingHost(into: input, at: transcript.offset)
                transcript = Transcript(input, skipBody: record.skipBody)
                hostAdapted += 1
            }
            let context = "\(record.title) [\(record.type)]: \(record.input.escaped)"
            if let (pin, _) = Self.pinned[record.title] {
                unusedPins.remove(record.title)
                switch pin {
                case .rejected(let reason): #expect(transcript.rejection?.reason == reason, "\(context)")
                case .accepted: #expect(transcript.rejection == nil, "\(context)")
                }
            } else if record.type.hasPrefix("request-lenient") {
                let stoppedEarly = transcript.end == .closed && transcript.offset < input.count
                #expect(transcript.rejection != nil || stoppedEarly, "lenient-only input accepted: \(context)")
            } else if let code = record.errorCode, code != Self.upgradePause, code != Self.dataAfterClose {
                #expect(transcript.rejection != nil, "llhttp refuses, we accept: \(context)")
                #expect(transcript.completed <= record.messagesCompleted, "\(context)")
            } else {
                Self.expectSame(transcript, as: record, context)
            }
        }
        #expect(unusedPins.isEmpty, "pins matching no record: \(unusedPins.sorted())")
        #expect(hostAdapted > 0)
    }

    static func expectSame(_ transcript: Transcript, as record: Record, _ context: String) {
        #expect(transcript.rejection == nil, "llhttp accepts, we refuse: \(context)")
        #expect(transcript.completed == record.messagesCompleted, "messages: \(context)")
        // llhttp also logs the method of a head it has not finished.
        #expect(transcript.messages.map(\.head.methodString) == Array(record.methods.prefix(record.heads.count)))
        #expect(transcript.messages.flatMap(\.pieces) == record.bodyPieces, "body pieces: \(context)")
        let chunked = 0x08
        let contentLength = 0x20
        let expectedFraming = record.heads.map { head -> BodyFraming in
            if head.flags & chunked != 0 { return .chunked }
            return head.flags & contentLength != 0 ? .contentLength(head.contentLength) : .none
        }
        #expect(transcript.messages.map(\.head.framing) == expectedFraming, "framing: \(context)")
        switch record.errorCode {
        case upgradePause?: #expect(transcript.end == .upgraded, "\(context)")
        case dataAfterClose?: #expect(transcript.end == .closed, "\(context)")
        default: break
        }
    }
}
