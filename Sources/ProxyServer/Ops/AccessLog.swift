import Glibc
import Synchronization

/// The access log: one JSON object per line on stdout. Loops buffer their lines and hand them
/// over once per event-loop iteration; the lock keeps lines of different loops from interleaving.
final class AccessLog: Sendable {
    private let lock = Mutex(())

    func write(_ bytes: [UInt8]) {
        lock.withLock { _ in writeAll(1, bytes) }
    }
}

/// Writes everything, retrying short writes and EINTR; drops the rest if the descriptor fails
/// (a broken log pipe must not stop the proxy).
func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
    bytes.withUnsafeBytes { buffer in
        var offset = 0
        while offset < buffer.count {
            let written = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
            if written < 0 && errno == EINTR { continue }
            if written <= 0 { return }
            offset += written
        }
    }
}

/// One request's log line.
struct AccessRecord {
    var time: Int64 = 0  // µs since the epoch, when the request head was complete
    var requestID = ""
    var client = ""
    var method = ""
    var path = ""
    var status = 0
    var bytes = 0  // response body bytes sent to the client
    var duration: Int64 = 0  // ms
    var upstreamTime: Int64?  // ms from sending the request upstream to its response head
    var decision = "deny"  // allow | deny | error
    var reason = ""
    var email: String?

    func appendJSON(to line: inout [UInt8]) {
        line.append(contentsOf: #"{"time":""#.utf8)
        appendTimestamp(time, to: &line)
        line.append(contentsOf: #"","request_id":""#.utf8)
        line.append(contentsOf: requestID.utf8)
        line.append(contentsOf: #"","client":""#.utf8)
        appendEscaped(client, to: &line)
        line.append(contentsOf: #"","method":""#.utf8)
        appendEscaped(method, to: &line)
        line.append(contentsOf: #"","path":""#.utf8)
        appendEscaped(path, to: &line)
        line.append(contentsOf: #"","status":"#.utf8)
        line.append(contentsOf: String(status).utf8)
        line.append(contentsOf: #","bytes":"#.utf8)
        line.append(contentsOf: String(bytes).utf8)
        line.append(contentsOf: #","duration_ms":"#.utf8)
        line.append(contentsOf: String(duration).utf8)
        line.append(contentsOf: #","upstream_ms":"#.utf8)
        line.append(contentsOf: (upstreamTime.map(String.init) ?? "null").utf8)
        line.append(contentsOf: #","decision":""#.utf8)
        line.append(contentsOf: decision.utf8)
        line.append(contentsOf: #"","reason":""#.utf8)
        appendEscaped(reason, to: &line)
        line.append(contentsOf: #"","email":"#.utf8)
        if let email {
            line.append(UInt8(ascii: "\""))
            appendEscaped(email, to: &line)
            line.append(UInt8(ascii: "\""))
        } else {
            line.append(contentsOf: "null".utf8)
        }
        line.append(contentsOf: "}\n".utf8)
    }
}

/// JSON string contents (without quotes): quotes, backslashes and control bytes escaped.
func appendEscaped(_ text: String, to line: inout [UInt8]) {
    for byte in text.utf8 {
        switch byte {
        case UInt8(ascii: "\""): line.append(contentsOf: #"\""#.utf8)
        case UInt8(ascii: "\\"): line.append(contentsOf: #"\\"#.utf8)
        case 0..<0x20, 0x7F:
            let hex = Array("0123456789abcdef".utf8)
            line.append(contentsOf: #"\u00"#.utf8)
            line.append(hex[Int(byte >> 4)])
            line.append(hex[Int(byte & 0xF)])
        default: line.append(byte)
        }
    }
}

/// RFC 3339 UTC with milliseconds: 2026-11-27T08:20:13.123Z.
func appendTimestamp(_ microseconds: Int64, to line: inout [UInt8]) {
    var seconds = time_t(microseconds / 1_000_000)
    var parts = tm()
    gmtime_r(&seconds, &parts)
    func digits(_ value: Int32, _ width: Int) {
        let text = String(value)
        line.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: max(0, width - text.utf8.count)))
        line.append(contentsOf: text.utf8)
    }
    digits(parts.tm_year + 1900, 4)
    line.append(UInt8(ascii: "-"))
    digits(parts.tm_mon + 1, 2)
    line.append(UInt8(ascii: "-"))
    digits(parts.tm_mday, 2)
    line.append(UInt8(ascii: "T"))
    digits(parts.tm_hour, 2)
    line.append(UInt8(ascii: ":"))
    digits(parts.tm_min, 2)
    line.append(UInt8(ascii: ":"))
    digits(parts.tm_sec, 2)
    line.append(UInt8(ascii: "."))
    digits(Int32(microseconds / 1000 % 1000), 3)
    line.append(UInt8(ascii: "Z"))
}

/// Lifecycle events (start, keys, reloads, drain): one JSON line on stderr each.
public enum EventLog {
    public static func event(_ name: String, _ fields: [(String, String)] = []) {
        var line: [UInt8] = []
        line.append(contentsOf: #"{"time":""#.utf8)
        appendTimestamp(wallClockMicroseconds(), to: &line)
        line.append(contentsOf: #"","event":""#.utf8)
        appendEscaped(name, to: &line)
        line.append(UInt8(ascii: "\""))
        for (key, value) in fields {
            line.append(contentsOf: #",""#.utf8)
            appendEscaped(key, to: &line)
            line.append(contentsOf: #"":""#.utf8)
            appendEscaped(value, to: &line)
            line.append(UInt8(ascii: "\""))
        }
        line.append(contentsOf: "}\n".utf8)
        writeAll(2, line)
    }
}
