import HTTP1
import IAPAuth

/// One request on its way through the proxy, and what its log line will say.
final class Exchange {
    /// How a body is delimited while it is being read.
    enum Body {
        case none
        case length(ContentLengthBody)
        case chunked(ChunkedDecoder)
        case untilClose
    }

    enum Response {
        case awaitingHead
        /// Streaming: how the upstream delimits the body, and how we delimit it to the client.
        case body(Body, toClient: BodyFraming)
        case complete
    }

    /// Nil only for a request whose head could not be parsed.
    let head: RequestHead?
    let requestID: RequestID
    let record: RecordBox
    /// Monotonic µs when the request head was complete, and when the request went upstream.
    let startedAt: Int64
    var identity: Identity?
    /// The identity headers for the upstream, rendered once per verified token.
    var identityHeaders: [ExtraField] = []
    /// The route that admitted the request, and the normalized target sent upstream.
    var route: Route?
    var target: String?
    var upstream: UpstreamConnection?
    var requestBody = Body.none
    var requestComplete = true
    var response = Response.awaitingHead
    /// Bytes of the response were queued to the client: errors can no longer become a status.
    var responseStarted = false
    /// The client connection persists after this response.
    var keepAlive = false
    /// The upstream connection persists after this response.
    var upstreamKeepAlive = false
    var sentAt: Int64 = 0
    var retried = false

    init(head: RequestHead?, worker: Worker) {
        self.head = head
        requestID = worker.nextRequestID()
        startedAt = monotonicMicroseconds()
        record = RecordBox()
        record.value.time = wallClockMicroseconds()
    }

    func admitted(_ identity: Identity?, route: Route, reason: String, headers: [ExtraField], target: String?) {
        self.identity = identity
        self.route = route
        identityHeaders = headers
        self.target = target
        record.value.decision = "allow"
        record.value.reason = reason
        record.value.email = identity?.email
    }

    /// A request may be replayed on a fresh connection only if nothing of it is lost by doing so:
    /// no body, and a method the client expects to be safe to repeat (RFC 9110 §9.2.2).
    var isRetriable: Bool {
        guard let head, head.framing == .none, !retried else { return false }
        return ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"].contains(head.methodString)
    }

    var isAwaitingResponseHead: Bool {
        if case .awaitingHead = response { return true }
        return false
    }
}

/// A request id: the worker's random prefix and a counter, formatted only when needed.
struct RequestID {
    let prefix: String
    let number: UInt64

    var string: String {
        var bytes: [UInt8] = []
        append(to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// `prefix-number`, the number in hex, straight into a log line.
    func append(to line: inout [UInt8]) {
        line.append(utf8: prefix)
        line.append(UInt8(ascii: "-"))
        line.append(hex: number)
    }
}

/// The access record, shared by reference so every path that ends an exchange logs the same one.
final class RecordBox {
    var value = AccessRecord()
}

extension Exchange.Body {
    init(_ framing: BodyFraming, limits: HTTPLimits) {
        switch framing {
        case .none: self = .none
        case .contentLength(let length): self = length == 0 ? .none : .length(ContentLengthBody(length: length))
        case .chunked: self = .chunked(ChunkedDecoder(limits: limits))
        case .untilClose: self = .untilClose
        }
    }
}

/// Chunked transfer coding toward a peer: every body we re-frame is re-encoded from decoded data,
/// so extensions, trailers and odd spellings from the other side never pass through.
enum Chunked {
    static func append(_ data: UnsafeRawBufferPointer, to buffer: ByteBuffer) {
        guard !data.isEmpty else { return }
        buffer.append(Array(String(data.count, radix: 16).utf8))
        buffer.append("\r\n")
        buffer.append(data)
        buffer.append("\r\n")
    }

    static func appendLast(to buffer: ByteBuffer) { buffer.append("0\r\n\r\n") }
}
