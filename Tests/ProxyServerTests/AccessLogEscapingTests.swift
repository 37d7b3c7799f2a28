import Testing

@testable import ProxyServer

@Suite("Access log: JSON string escaping")
struct AccessLogEscapingTests {
    @Test("Quotes, backslashes, controls and DEL are escaped; other bytes are copied as they are")
    func escaping() {
        var line: [UInt8] = []
        appendEscaped("a\"b\\c\u{01}\u{1F}\t\u{7F}é ~", to: &line)
        #expect(String(decoding: line, as: UTF8.self) == #"a\"b\\c\u0001\u001f\u0009\u007fé ~"#)
    }
}
