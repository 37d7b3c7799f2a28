import Foundation
import Testing

@testable import IAPAuth

@Suite("base64url and JSON")
struct EncodingTests {
    @Test("base64url round-trips every length and refuses non-canonical spellings")
    func base64url() {
        for length in 0..<40 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            #expect(Base64URL.decode(Base64URL.encode(bytes)) == bytes)
        }
        #expect(Base64URL.decode("Zm9v") == Array("foo".utf8))
        #expect(Base64URL.decode("Zm8") == Array("fo".utf8))
        // "Zm9" has non-zero unused bits ("fo" is "Zm8"); the others pad, use foreign characters or
        // have an impossible length.
        for bad in ["Zm8=", "Zm9", "Zm9=", "Z", "Zm+v", "Zm/v", "Zm 9v", "Zm9v\n"] {
            #expect(Base64URL.decode(bad) == nil, "\(bad.debugDescription)")
        }
        #expect(Base64URL.decode("Zm9w") == Array("fop".utf8))
    }

    @Test("base64url decoding agrees with Foundation's base64 on random strings")
    func base64urlAgreesWithFoundation() {
        // Mostly the alphabet, sometimes a foreign byte; Foundation (after mapping -_ to +/ and
        // padding) is the oracle, plus the canonical rule it does not enforce: zero unused bits.
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        let foreign = Array("+/=. \n\0é".utf8)
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<5000 {
            let length = Int.random(in: 0...24, using: &generator)
            let text: [UInt8] = (0..<length).map { _ in
                Int.random(in: 0..<50, using: &generator) == 0
                    ? foreign.randomElement(using: &generator)! : alphabet.randomElement(using: &generator)!
            }
            var standard = String(decoding: text, as: UTF8.self)
                .replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
            let foundationInput = !text.contains(where: { foreign.contains($0) }) && length % 4 != 1
            standard += String(repeating: "=", count: (4 - length % 4) % 4)
            var expected = foundationInput ? Data(base64Encoded: standard).map { [UInt8]($0) } : nil
            if let bytes = expected, Base64URL.encode(bytes) != String(decoding: text, as: UTF8.self) {
                expected = nil  // non-zero unused bits: Foundation accepts, canonical decoding must not
            }
            let decoded = text.withUnsafeBytes { Base64URL.decode($0) }
            #expect(decoded == expected, "\(String(decoding: text, as: UTF8.self).debugDescription)")
            #expect(text.withUnsafeBytes { Base64URL.isCanonical($0) } == (expected != nil))
        }
    }

    @Test("JSON: the RFC 8259 grammar, strictly")
    func grammar() throws {
        let valid = [
            #"{}"#, #"[]"#, #" {"a" : [1, -0, 0.5, 1e3, 1E-2, true, false, null, "x"]} "#, #""\u00e9\ud83d\ude00""#, "1",
        ]
        for text in valid { #expect((try? JSONValue.parse(text)) != nil, "\(text)") }
        let invalid = [
            "", "{", #"{"a":1,}"#, "[1,]", "01", "1.", ".5", "+1", "1e", "-", "tru", #"{"a" 1}"#, #"{a:1}"#,
            #"{"a":1} x"#, "'a'", #""\x""#, #""\ud800""#, #""\udc00x""#, "\"\u{01}\"", "\u{FEFF}{}", "NaN", "[1 2]",
        ]
        for text in invalid { #expect((try? JSONValue.parse(text)) == nil, "\(text.debugDescription)") }
        #expect(try JSONValue.parse(#""\u0045S256""#) == .string("ES256"))
        #expect(try JSONValue.parse(#""\ud83d\ude00""#) == .string("😀"))
    }

    @Test("JSON: duplicate member names are refused at any depth")
    func duplicates() {
        #expect((try? JSONValue.parse(#"{"a":1,"a":1}"#)) == nil)
        #expect((try? JSONValue.parse(#"{"x":{"a":1,"b":2,"a":3}}"#)) == nil)
        // Names equal only after escape decoding are duplicates too.
        #expect((try? JSONValue.parse(#"{"alg":1,"\u0061lg":2}"#)) == nil)
    }

    @Test("JSON: nesting is bounded and invalid UTF-8 refused")
    func limits() {
        let deep = String(repeating: "[", count: 40) + String(repeating: "]", count: 40)
        #expect((try? JSONValue.parse(deep)) == nil)
        let fine = String(repeating: "[", count: 30) + String(repeating: "]", count: 30)
        #expect((try? JSONValue.parse(fine)) != nil)
        #expect((try? JSONValue.parse([0x22, 0xC3, 0x28, 0x22])) == nil)
        #expect((try? JSONValue.parse([0x22, 0xED, 0xA0, 0x80, 0x22])) == nil)
    }

    @Test("JSON: integers only where integers are asked for")
    func integers() throws {
        #expect(try JSONValue.parse("1700000000").integerValue == 1_700_000_000)
        #expect(try JSONValue.parse("1.0").integerValue == nil)
        #expect(try JSONValue.parse("1e3").integerValue == nil)
        #expect(try JSONValue.parse("99999999999999999999").integerValue == nil)
    }

    @Test("JSON: serialization escapes and round-trips")
    func serialization() throws {
        let value = try JSONValue.parse(#"{"b":"q\"\\\n\u0001\u2028é","a":[1,true,null]}"#)
        #expect(try JSONValue.parse(value.serialized()) == value)
        #expect(value.serialized(sortedKeys: true).hasPrefix(#"{"a":"#))
    }
}
