import Glibc
import HTTP1
import IAPAuth
import Logging

/// The access log: one JSON object per line on stdout. Loops buffer their lines and hand them
/// over once per event-loop iteration; the lock keeps lines of different loops from interleaving.
final class AccessLog: Sendable {
    /// Standard output, written under the lock.
    private let output = Locked<Int32>(STDOUT_FILENO)

    func write(_ bytes: [UInt8]) {
        output.withLock { fd in writeAll(fd, bytes) }
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

/// One request's log line. Method and path are written straight from the request head's bytes.
struct AccessRecord {
    var time: Int64 = 0  // µs since the epoch, when the request head was complete
    var status = 0
    var bytes = 0  // response body bytes sent to the client
    var duration: Int64 = 0  // µs
    var upstreamTime: Int64?  // µs from sending the request upstream to its response head
    var decision = "deny"  // allow | deny | error
    var reason = ""
    var email: String?

    func appendJSON(
        requestID: RequestID, client: String, method: ArraySlice<UInt8>, path: ArraySlice<UInt8>,
        clock: inout LogClock, to line: inout [UInt8]
    ) {
        line.append(literal: #"{"time":""#)
        clock.appendTimestamp(time, to: &line)
        line.append(literal: #"","request_id":""#)
        requestID.append(to: &line)
        line.append(literal: #"","client":""#)
        appendEscaped(client, to: &line)
        line.append(literal: #"","method":""#)
        appendEscaped(method, to: &line)
        line.append(literal: #"","path":""#)
        appendEscaped(path, to: &line)
        line.append(literal: #"","status":"#)
        line.append(decimal: Int64(status))
        line.append(literal: #","bytes":"#)
        line.append(decimal: Int64(bytes))
        line.append(literal: #","duration_ms":"#)
        appendMilliseconds(duration, to: &line)
        line.append(literal: #","upstream_ms":"#)
        if let upstreamTime { appendMilliseconds(upstreamTime, to: &line) } else { line.append(literal: "null") }
        line.append(literal: #","decision":""#)
        line.append(utf8: decision)
        line.append(literal: #"","reason":""#)
        appendEscaped(reason, to: &line)
        line.append(literal: #"","email":"#)
        if let email {
            line.append(UInt8(ascii: "\""))
            appendEscaped(email, to: &line)
            line.append(UInt8(ascii: "\""))
        } else {
            line.append(literal: "null")
        }
        line.append(literal: "}\n")
    }
}

extension AccessRecord {
    /// Query parameters whose values are credentials (JupyterHub's `?token=`, OAuth's `code`):
    /// logged as `REDACTED`, as the apps' own logs do.
    static let secretParameters: Set<String> = [
        "token", "access_token", "id_token", "refresh_token", "api_key", "apikey", "key", "password", "secret",
        "client_secret", "code", "sig", "signature", "x-amz-signature", "x-goog-signature",
    ]

    /// The request target for the log, with the values of `secretParameters` replaced.
    static func redactingSecrets(_ target: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        guard let question = target.firstIndex(of: UInt8(ascii: "?")) else { return target }  // the usual case
        var redacted = Array(target[...question])
        for (index, pair) in target[(question + 1)...].split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: false).enumerated() {
            if index > 0 { redacted.append(UInt8(ascii: "&")) }
            let equals = pair.firstIndex(of: UInt8(ascii: "="))
            let name = String(decoding: pair[..<(equals ?? pair.endIndex)], as: UTF8.self).lowercased()
            if let equals, secretParameters.contains(name) {
                redacted += pair[...equals]
                redacted += "REDACTED".utf8
            } else {
                redacted += pair
            }
        }
        return redacted[...]
    }

    /// The same record as `key=value` text (`--log-format text`).
    func appendText(
        requestID: String, client: String, method: ArraySlice<UInt8>, path: ArraySlice<UInt8>,
        clock: inout LogClock, to line: inout [UInt8]
    ) {
        clock.appendTimestamp(time, to: &line)
        line.append(contentsOf: " access".utf8)
        var duration: [UInt8] = []
        appendMilliseconds(self.duration, to: &duration)
        var upstream: [UInt8] = Array("-".utf8)
        if let upstreamTime {
            upstream.removeAll()
            appendMilliseconds(upstreamTime, to: &upstream)
        }
        for (key, value) in [
            ("request_id", requestID), ("client", client), ("method", String(decoding: method, as: UTF8.self)),
            ("path", String(decoding: path, as: UTF8.self)), ("status", String(status)), ("bytes", String(bytes)),
            ("duration_ms", String(decoding: duration, as: UTF8.self)), ("upstream_ms", String(decoding: upstream, as: UTF8.self)),
            ("decision", decision), ("reason", reason), ("email", email ?? "-"),
        ] {
            appendTextField(key, value, to: &line)
        }
        line.append(UInt8(ascii: "\n"))
    }
}

/// JSON string contents (without quotes): quotes, backslashes and control bytes escaped. Runs of
/// plain bytes (nearly every value) are copied at once.
func appendEscaped(_ bytes: UnsafeBufferPointer<UInt8>, to line: inout [UInt8]) {
    var plainStart = 0
    for (index, byte) in bytes.enumerated() where byte < 0x20 || byte == 0x7F || byte == UInt8(ascii: "\"")
        || byte == UInt8(ascii: "\\")
    {
        line.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[plainStart..<index]))
        plainStart = index + 1
        switch byte {
        case UInt8(ascii: "\""): line.append(literal: #"\""#)
        case UInt8(ascii: "\\"): line.append(literal: #"\\"#)
        default:
            line.append(literal: byte < 0x10 ? #"\u000"# : #"\u00"#)
            line.append(hex: UInt64(byte))
        }
    }
    line.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[plainStart...]))
}

func appendEscaped(_ bytes: ArraySlice<UInt8>, to line: inout [UInt8]) {
    bytes.withUnsafeBufferPointer { appendEscaped($0, to: &line) }
}

func appendEscaped(_ text: String, to line: inout [UInt8]) {
    var text = text
    text.withUTF8 { appendEscaped($0, to: &line) }
}

/// Microseconds as milliseconds with three decimals (`1.234`).
func appendMilliseconds(_ microseconds: Int64, to line: inout [UInt8]) {
    line.append(decimal: microseconds / 1000)
    line.append(UInt8(ascii: "."))
    let fraction = microseconds % 1000
    line.append(UInt8(ascii: "0") + UInt8(fraction / 100))
    line.append(UInt8(ascii: "0") + UInt8(fraction / 10 % 10))
    line.append(UInt8(ascii: "0") + UInt8(fraction % 10))
}

/// RFC 3339 UTC timestamps with milliseconds; the date and time part is formatted once per second.
struct LogClock {
    private var second: Int64 = -1
    private var prefix: [UInt8] = []

    mutating func appendTimestamp(_ microseconds: Int64, to line: inout [UInt8]) {
        let current = microseconds / 1_000_000
        if current != second {
            second = current
            prefix = Self.format(current)
        }
        line.append(contentsOf: prefix)
        let milliseconds = microseconds / 1000 % 1000
        line.append(UInt8(ascii: "0") + UInt8(milliseconds / 100))
        line.append(UInt8(ascii: "0") + UInt8(milliseconds / 10 % 10))
        line.append(UInt8(ascii: "0") + UInt8(milliseconds % 10))
        line.append(UInt8(ascii: "Z"))
    }

    /// `2026-11-27T08:20:13.` for a time in seconds.
    static func format(_ seconds: Int64) -> [UInt8] {
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        var text: [UInt8] = []
        func digits(_ value: Int32, _ width: Int) {
            var decimal: [UInt8] = []
            decimal.append(decimal: Int64(value))
            text.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: max(0, width - decimal.count)))
            text.append(contentsOf: decimal)
        }
        digits(parts.tm_year + 1900, 4)
        text.append(UInt8(ascii: "-"))
        digits(parts.tm_mon + 1, 2)
        text.append(UInt8(ascii: "-"))
        digits(parts.tm_mday, 2)
        text.append(UInt8(ascii: "T"))
        digits(parts.tm_hour, 2)
        text.append(UInt8(ascii: ":"))
        digits(parts.tm_min, 2)
        text.append(UInt8(ascii: ":"))
        digits(parts.tm_sec, 2)
        text.append(UInt8(ascii: "."))
        return text
    }
}

/// How log lines are written: JSON objects (the default, for log pipelines) or `key=value` text.
public enum LogFormat: String, Sendable, CaseIterable {
    case json
    case text
}

/// Lifecycle events (start, keys, reloads, drain, errors) go through swift-log, so levels and
/// handlers work as for any Swift server; `bootstrap` installs iap-proxy's handler on stderr.
public enum EventLog {
    private static let logger = Logger(label: "iap-proxy")

    /// Installs the stderr handler; call once, before the first event.
    public static func bootstrap(format: LogFormat, level: Logger.Level) {
        LoggingSystem.bootstrap { _ in EventLogHandler(format: format, logLevel: level) }
    }

    public static func event(level: Logger.Level = .info, _ name: String, _ fields: [(String, String)] = []) {
        var metadata = Logger.Metadata()
        for (key, value) in fields { metadata[key] = .string(value) }
        logger.log(level: level, Logger.Message(stringLiteral: name), metadata: metadata)
    }
}

/// One line per event on stderr: `{"time":…,"level":…,"event":…,fields…}` or
/// `time level event key=value…` (values with spaces quoted).
struct EventLogHandler: LogHandler {
    let format: LogFormat
    var logLevel: Logger.Level
    var metadata = Logger.Metadata()

    init(format: LogFormat, logLevel: Logger.Level) {
        self.format = format
        self.logLevel = logLevel
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let (level, message) = (event.level, event.message)
        let fields = metadata.merging(event.metadata ?? [:]) { $1 }.sorted { $0.key < $1.key }
        var clock = LogClock()
        var text: [UInt8] = []
        switch format {
        case .json:
            text.append(contentsOf: #"{"time":""#.utf8)
            clock.appendTimestamp(wallClockMicroseconds(), to: &text)
            text.append(contentsOf: #"","level":""#.utf8)
            text.append(contentsOf: level.rawValue.utf8)
            text.append(contentsOf: #"","event":""#.utf8)
            appendEscaped(message.description, to: &text)
            text.append(UInt8(ascii: "\""))
            for (key, value) in fields {
                text.append(contentsOf: #",""#.utf8)
                appendEscaped(key, to: &text)
                text.append(contentsOf: #"":""#.utf8)
                appendEscaped(value.description, to: &text)
                text.append(UInt8(ascii: "\""))
            }
            text.append(contentsOf: "}\n".utf8)
        case .text:
            clock.appendTimestamp(wallClockMicroseconds(), to: &text)
            text.append(contentsOf: " \(level.rawValue) \(message.description)".utf8)
            for (key, value) in fields { appendTextField(key, value.description, to: &text) }
            text.append(UInt8(ascii: "\n"))
        }
        writeAll(2, text)
    }
}

/// ` key=value`, quoting values that are empty or hold spaces, quotes or `=`.
func appendTextField(_ key: String, _ value: String, to line: inout [UInt8]) {
    line.append(UInt8(ascii: " "))
    line.append(utf8: key)
    line.append(UInt8(ascii: "="))
    if value.isEmpty || value.utf8.contains(where: { $0 == 0x20 || $0 == 0x22 || $0 == 0x3D || $0 < 0x20 }) {
        line.append(UInt8(ascii: "\""))
        appendEscaped(value, to: &line)
        line.append(UInt8(ascii: "\""))
    } else {
        line.append(utf8: value)
    }
}
