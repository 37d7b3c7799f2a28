import Foundation
import HTTP1
import Testing

/// HTTP Garden `trophies_payloads.json`: 79 real parser bugs. Every payload (each alone, and a bug's
/// payloads concatenated as one connection) is refused, or parsed with unambiguous framing, which here
/// means, operationally:
/// 1. each accepted head, re-parsed alone from its own bytes, is the same head (same length, fields and
///    framing): the boundaries do not depend on what follows;
/// 2. the messages re-serialized the way the proxy forwards them (RequestHeadWriter, hop-by-hop and
///    framing fields replaced by canonical ones, ChunkedEncoder) parse back into the same messages:
///    same count, methods, targets, framing kinds and body bytes, and nothing left over.
@Suite("HTTP Garden corpus")
struct HTTPGardenTests {
    @Test("Every payload is refused or framed unambiguously")
    func trophies() throws {
        let bugs = try Vectors.object("http-garden/trophies_payloads.json").objects("bugs")
        #expect(bugs.count == 79)
        var inputs: [(String, [UInt8])] = []
        for bug in bugs {
            let name = "\(try bug.string("section")) #\(bug["number"] ?? "?")"
            let payloads = try bug.objects("payloads").map { try $0.base64("base64") }
            inputs += payloads.map { (name, $0) }
            if payloads.count > 1 { inputs.append((name + " (one connection)", payloads.flatMap { $0 })) }
        }
        #expect(inputs.count > 70)
        var accepted = 0
        for (name, original) in inputs {
            // Many payloads omit Host and are refused for that alone; their Host-carrying variant must
            // also be refused or framed unambiguously.
            var input = original
            var transcript = Transcript(input)
            Self.expectUnambiguous(transcript, "\(name): \(input.escaped)")
            while transcript.rejection?.reason == "missing-host" {
                input = Transcript.insertingHost(into: input, at: transcript.offset)
                transcript = Transcript(input)
                Self.expectUnambiguous(transcript, "\(name) with Host: \(input.escaped)")
            }
            accepted += transcript.completed
        }
        #expect(accepted > 0)
    }

    static func expectUnambiguous(_ transcript: Transcript, _ context: String) {
        if let error = transcript.rejection {
            #expect([400, 414, 417, 431, 501, 505].contains(error.status), "\(context)")
        }
        for message in transcript.messages {
            let again = parseRequest(message.head.bytes)
            #expect(again.length == message.head.bytes.count, "\(context)")
            #expect(again.head?.fields == message.head.fields && again.head?.framing == message.head.framing)
        }
        let replay = Transcript(transcript.forwarded())
        let original = transcript.messages.filter(\.complete)
        #expect(replay.rejection == nil && replay.messages.allSatisfy(\.complete), "\(context)")
        #expect(replay.messages.map(\.head.methodString) == original.map(\.head.methodString), "\(context)")
        #expect(replay.messages.map(\.head.targetString) == original.map(\.head.targetString), "\(context)")
        #expect(replay.messages.map(\.head.framing) == original.map(\.head.framing), "\(context)")
        #expect(replay.messages.map(\.body) == original.map(\.body), "\(context)")
        #expect(replay.end == (original.last.map { !$0.head.keepAlive } == true ? .closed : .drained), "\(context)")
    }
}
