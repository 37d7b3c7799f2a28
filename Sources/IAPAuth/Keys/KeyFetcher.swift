import CCurl

#if canImport(Glibc)
import Glibc
#endif

/// One HTTP response from the key server.
public struct KeyFetchResponse: Sendable {
    public let status: Int
    public let body: [UInt8]
    /// `Cache-Control: max-age`, when sent (and no `no-store`/`no-cache`).
    public let maxAge: Int64?
    /// The `Age` header: seconds the response already spent in caches.
    public let age: Int64
}

/// Why a fetch produced no usable response.
public struct KeyFetchError: Error, Sendable, Equatable, CustomStringConvertible {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// Fetches the key set with libcurl: one easy handle, reused (keep-alive), owned by one thread.
///
/// Plain `http://` is accepted only for loopback hosts (tests, a local key server); anything else
/// must be `https://` with certificate and host verification on. No redirects are followed.
public final class KeyFetcher {
    public struct Settings: Sendable {
        public var url: String
        public var connectTimeoutMilliseconds = 5_000
        public var totalTimeoutMilliseconds = 10_000
        /// Largest accepted body; Google's set is ~1 KiB. Enforced while receiving.
        public var maximumBytes = 256 * 1024

        public init(url: String) { self.url = url }
    }

    public static let googleIAPKeysURL = "https://www.gstatic.com/iap/verify/public_key-jwk"

    private let settings: Settings
    private let handle: UnsafeMutableRawPointer  // CURL is `void` in C

    /// libcurl's global initialisation is not thread-safe; this runs it exactly once, and callers
    /// touch it before starting threads (`KeyFetcher.initializeLibrary()`).
    private static let libraryReady: Bool = curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK

    public static func initializeLibrary() { precondition(libraryReady, "curl_global_init failed") }

    public init(_ settings: Settings) throws(KeyFetchError) {
        if let problem = Self.problem(withURL: settings.url) { throw KeyFetchError(problem) }
        Self.initializeLibrary()
        guard let handle = curl_easy_init() else { throw KeyFetchError("curl_easy_init failed") }
        self.settings = settings
        self.handle = handle
    }

    deinit { curl_easy_cleanup(handle) }

    /// Why `url` may not be used as a key source, or nil when it may.
    public static func problem(withURL url: String) -> String? {
        let scheme: String
        let rest: Substring
        if url.hasPrefix("https://") {
            (scheme, rest) = ("https", url.dropFirst(8))
        } else if url.hasPrefix("http://") {
            (scheme, rest) = ("http", url.dropFirst(7))
        } else {
            return "key URL \(url.debugDescription) must start with https:// (or http:// on loopback)"
        }
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        if authority.isEmpty { return "key URL \(url.debugDescription) has no host" }
        if authority.contains("@") { return "key URL \(url.debugDescription) must not carry credentials" }
        if url.contains(where: { $0.isWhitespace || $0.asciiValue.map { $0 < 0x20 || $0 == 0x7F } ?? false }) {
            return "key URL \(url.debugDescription) contains whitespace or control characters"
        }
        if scheme == "http" && !isLoopback(host(of: authority)) {
            return "plain http:// is only allowed for loopback hosts; use https:// for \(url.debugDescription)"
        }
        return nil
    }

    private static func host(of authority: Substring) -> Substring {
        if authority.hasPrefix("[") { return authority.prefix { $0 != "]" }.dropFirst() }
        return authority.prefix { $0 != ":" }
    }

    private static func isLoopback(_ host: Substring) -> Bool {
        if host == "localhost" || host == "::1" { return true }
        let octets = host.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets[0] == "127" && octets.allSatisfy { UInt8($0) != nil }
    }

    /// One GET. Transport errors, timeouts and oversized bodies are errors; any HTTP status is a
    /// response (the caller decides what a 500 means).
    public func fetch() -> Result<KeyFetchResponse, KeyFetchError> {
        let sink = ResponseSink(limit: settings.maximumBytes)
        let unmanaged = Unmanaged.passRetained(sink)
        defer { unmanaged.release() }
        let context = unmanaged.toOpaque()
        let isHTTPS = settings.url.hasPrefix("https://")
        var failures: [String] = []
        func set(_ option: CURLoption, _ value: Int) {
            if iap_curl_setopt_long(handle, option, value) != CURLE_OK { failures.append("option \(option.rawValue)") }
        }
        func set(_ option: CURLoption, _ value: String) {
            if iap_curl_setopt_string(handle, option, value) != CURLE_OK { failures.append("option \(option.rawValue)") }
        }
        set(CURLOPT_URL, settings.url)
        set(CURLOPT_PROTOCOLS_STR, isHTTPS ? "https" : "http")
        set(CURLOPT_FOLLOWLOCATION, 0)
        set(CURLOPT_NOSIGNAL, 1)  // threaded program: no SIGALRM for DNS timeouts (libcurl-thread(3))
        set(CURLOPT_CONNECTTIMEOUT_MS, settings.connectTimeoutMilliseconds)
        set(CURLOPT_TIMEOUT_MS, settings.totalTimeoutMilliseconds)
        set(CURLOPT_SSL_VERIFYPEER, 1)
        set(CURLOPT_SSL_VERIFYHOST, 2)
        set(CURLOPT_ACCEPT_ENCODING, "")
        set(CURLOPT_USERAGENT, "iap-proxy")
        // Stops early when Content-Length is known; the write callback enforces the cap either way
        // (CURLOPT_MAXFILESIZE only covers unknown lengths from curl 8.4).
        set(CURLOPT_MAXFILESIZE, settings.maximumBytes)
        if iap_curl_setopt_callback(handle, CURLOPT_WRITEFUNCTION, writeBody) != CURLE_OK
            || iap_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, context) != CURLE_OK
            || iap_curl_setopt_callback(handle, CURLOPT_HEADERFUNCTION, writeHeader) != CURLE_OK
            || iap_curl_setopt_pointer(handle, CURLOPT_HEADERDATA, context) != CURLE_OK
        {
            failures.append("callbacks")
        }
        guard failures.isEmpty else { return .failure(KeyFetchError("libcurl refused \(failures)")) }

        let code = curl_easy_perform(handle)
        if sink.exceeded { return .failure(KeyFetchError("response larger than \(settings.maximumBytes) bytes")) }
        guard code == CURLE_OK else {
            return .failure(KeyFetchError(String(cString: curl_easy_strerror(code))))
        }
        var status = 0
        _ = iap_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return .success(KeyFetchResponse(status: status, body: sink.body, maxAge: sink.maxAge, age: sink.age))
    }
}

/// Collects one response; reached from libcurl's C callbacks through `userdata`.
private final class ResponseSink {
    let limit: Int
    var body: [UInt8] = []
    var exceeded = false
    var maxAge: Int64?
    var age: Int64 = 0

    init(limit: Int) { self.limit = limit }

    func header(_ line: Substring) {
        if line.hasPrefix("HTTP/") {  // a new response (e.g. after 100 Continue): start over
            maxAge = nil
            age = 0
            return
        }
        guard let colon = line.firstIndex(of: ":") else { return }
        let name = line[..<colon].lowercased()
        let value = line[line.index(after: colon)...].trimmingWhitespace()
        switch name {
        case "cache-control":
            maxAge = CacheControl.maxAge(value)
        case "age":
            age = Int64(value).map { max(0, $0) } ?? 0
        default:
            break
        }
    }
}

private let writeBody: iap_curl_data_callback = { data, size, count, userdata in
    let sink = Unmanaged<ResponseSink>.fromOpaque(userdata!).takeUnretainedValue()
    let length = size * count
    guard sink.body.count + length <= sink.limit else {
        sink.exceeded = true
        return 0  // aborts the transfer (CURLE_WRITE_ERROR)
    }
    if let data { sink.body.append(contentsOf: UnsafeRawBufferPointer(start: data, count: length)) }
    return length
}

private let writeHeader: iap_curl_data_callback = { data, size, count, userdata in
    let sink = Unmanaged<ResponseSink>.fromOpaque(userdata!).takeUnretainedValue()
    let length = size * count
    if let data, length <= 8192 {
        let line = String(decoding: UnsafeRawBufferPointer(start: data, count: length), as: UTF8.self)
        sink.header(Substring(line))
    }
    return length
}

/// `Cache-Control` directives that matter for a key set.
enum CacheControl {
    /// `max-age` in seconds, or nil when absent, malformed, or overridden by no-store/no-cache.
    static func maxAge(_ value: Substring) -> Int64? {
        var maxAge: Int64?
        for directive in value.split(separator: ",") {
            let parts = directive.split(separator: "=", maxSplits: 1).map { $0.trimmingWhitespace().lowercased() }
            switch parts[0] {
            case "no-store", "no-cache": return nil
            case "max-age" where parts.count == 2:
                maxAge = Int64(parts[1].filter { $0 != "\"" })
            default: break
            }
        }
        return maxAge.flatMap { $0 >= 0 ? $0 : nil }
    }
}

extension StringProtocol {
    /// Drops spaces, tabs, CR and LF at both ends. Works on scalars: "\r\n" is one Character.
    func trimmingWhitespace() -> Substring {
        let isSpace: (Unicode.Scalar) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" }
        let scalars = Substring(self).unicodeScalars
        guard let first = scalars.firstIndex(where: { !isSpace($0) }),
            let last = scalars.lastIndex(where: { !isSpace($0) })
        else { return "" }
        return Substring(scalars[first...last])
    }
}
