/// The short generic responses iap-proxy sends itself. They name the status and a request id,
/// nothing more: the reason goes to the access log only.
enum ErrorPage {
    static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 200: return "OK"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 408: return "Request Timeout"
        case 413: return "Content Too Large"
        case 414: return "URI Too Long"
        case 417: return "Expectation Failed"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 502: return "Bad Gateway"
        case 503: return "Service Unavailable"
        case 504: return "Gateway Timeout"
        case 505: return "HTTP Version Not Supported"
        default: return "Error"
        }
    }

    /// Appends a complete response (to HEAD: the head alone); returns the body bytes sent.
    @discardableResult
    static func append(status: Int, requestID: String, close: Bool, headRequest: Bool, to buffer: ByteBuffer) -> Int {
        let phrase = reasonPhrase(status)
        let body = "\(status) \(phrase)\nrequest id: \(requestID)\n"
        var head = "HTTP/1.1 \(status) \(phrase)\r\nContent-Type: text/plain; charset=utf-8\r\n"
        head += "Content-Length: \(body.utf8.count)\r\nCache-Control: no-store\r\nX-Request-Id: \(requestID)\r\n"
        // RFC 9110 §11.6.1: a 401 carries a challenge.
        if status == 401 { head += "WWW-Authenticate: IAP realm=\"iap-proxy\"\r\n" }
        if close { head += "Connection: close\r\n" }
        buffer.append(Array((head + "\r\n" + (headRequest ? "" : body)).utf8))
        return headRequest ? 0 : body.utf8.count
    }
}
