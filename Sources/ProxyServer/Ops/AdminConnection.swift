import Glibc
import HTTP1

/// The admin listener's connections: `/healthz` (the loop answers, so it is alive) and `/readyz`
/// (a key set and a policy are loaded and the proxy is not draining). One request each.
final class AdminConnection: LoopHandler {
    private let fd: Int32
    private var token: EventLoop.Token?
    private unowned let worker: Worker
    private let inbound = ByteBuffer()
    private let outbound = ByteBuffer()
    private let deadline: Int64
    private var answered = false

    private init(fd: Int32, worker: Worker) {
        self.fd = fd
        self.worker = worker
        deadline = worker.loop.now + 5_000
    }

    static func start(fd: Int32, worker: Worker) {
        let connection = AdminConnection(fd: fd, worker: worker)
        guard let token = try? worker.loop.register(fd, interest: Readiness.readable, handler: connection) else {
            Glibc.close(fd)
            return
        }
        connection.token = token
    }

    func handle(_ events: UInt32) {
        if !answered {
            let buffer = inbound.writable(minimum: 1024, preferred: 4096)
            guard case .done(let count) = (try? Socket.read(fd, into: buffer)) ?? .done(0), count > 0 else {
                return close()
            }
            inbound.commit(count)
            switch HTTP1Parser.parseRequestHead(inbound.readable) {
            case .incomplete: return
            case .invalid: respond(400, "bad request\n")
            case .complete(let head, _): route(head)
            }
        }
        if case .done = (try? Socket.write(fd, outbound.readable)) ?? .wouldBlock {
            // One request per connection: written, or the client stopped reading.
        }
        close()
    }

    private func route(_ head: RequestHead) {
        let path = head.targetString.split(separator: "?", maxSplits: 1).first.map(String.init) ?? ""
        switch path {
        case "/healthz":
            respond(200, "ok\n")
        case "/metrics":
            let body = worker.shared.metrics.render(worker.shared, draining: worker.draining)
            respond(200, String(decoding: body, as: UTF8.self), contentType: "text/plain; version=0.0.4; charset=utf-8")
        case "/readyz":
            var missing: [String] = []
            if worker.shared.keys.current == nil { missing.append("no key set loaded") }
            if worker.shared.policy == nil { missing.append("no policy loaded") }
            if worker.draining { missing.append("draining") }
            respond(missing.isEmpty ? 200 : 503, missing.isEmpty ? "ready\n" : missing.joined(separator: "\n") + "\n")
        default:
            respond(404, "not found\n")
        }
    }

    private func respond(_ status: Int, _ body: String, contentType: String = "text/plain; charset=utf-8") {
        answered = true
        let head = "HTTP/1.1 \(status) \(ErrorPage.reasonPhrase(status))\r\n"
            + "Content-Type: \(contentType)\r\nContent-Length: \(body.utf8.count)\r\n"
            + "Cache-Control: no-store\r\nConnection: close\r\n\r\n"
        outbound.append(Array((head + body).utf8))
    }

    func sweep(now: Int64) {
        if now >= deadline { close() }
    }

    private func close() {
        guard let token else { return }
        self.token = nil
        worker.loop.deregister(fd, token: token)
        Glibc.close(fd)
    }
}
