import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A tiny HTTP/1.1 server on 127.0.0.1 for key-source tests: each connection gets the reply the
/// current `behaviour` chooses (a response, a stall, a reset), then the connection closes.
final class KeyServer: @unchecked Sendable {
    enum Behaviour: Sendable {
        case reply(status: Int, headers: [String], body: [UInt8])
        /// Answers only after `seconds` (to trip the client's timeout).
        case stall(seconds: Double)
        /// Closes the connection without a response.
        case reset
        /// Streams `count` bytes with chunked encoding (no Content-Length).
        case chunked(count: Int)
    }

    let port: UInt16
    private let listener: Int32
    private let behaviour: Mutex<Behaviour>
    private let requests = Atomic<Int>(0)
    private let stopped = Atomic<Bool>(false)

    var url: String { "http://127.0.0.1:\(port)/keys" }
    var requestCount: Int { requests.load(ordering: .sequentiallyConsistent) }

    init(_ initial: Behaviour) throws {
        behaviour = Mutex(initial)
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var one: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(listener, 64) == 0 else { throw VectorError("cannot listen: \(errno)") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        self.listener = listener
        port = UInt16(bigEndian: address.sin_port)
        Thread.detachNewThread { [self] in acceptLoop() }
    }

    func set(_ next: Behaviour) { behaviour.withLock { $0 = next } }

    static func jwks(_ body: String, maxAge: Int? = 3600) -> Behaviour {
        .reply(
            status: 200, headers: maxAge.map { ["Cache-Control: public, max-age=\($0)"] } ?? [], body: Array(body.utf8))
    }

    func stop() {
        stopped.store(true, ordering: .sequentiallyConsistent)
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    private func acceptLoop() {
        while !stopped.load(ordering: .sequentiallyConsistent) {
            let connection = accept(listener, nil, nil)
            if connection < 0 { return }
            requests.add(1, ordering: .sequentiallyConsistent)
            let current = behaviour.withLock { $0 }
            Thread.detachNewThread { Self.serve(connection, current) }
        }
    }

    private static func serve(_ connection: Int32, _ behaviour: Behaviour) {
        defer { close(connection) }
        var head: [UInt8] = []
        var byte: UInt8 = 0
        while !head.suffix(4).elementsEqual([13, 10, 13, 10]) && head.count < 16384 {
            guard recv(connection, &byte, 1, 0) == 1 else { return }
            head.append(byte)
        }
        func send(_ bytes: [UInt8]) {
            var offset = 0
            while offset < bytes.count {
                let sent = bytes[offset...].withUnsafeBytes { Glibc.send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if sent <= 0 { return }
                offset += sent
            }
        }
        switch behaviour {
        case .reply(let status, let headers, let body):
            let lines = ["HTTP/1.1 \(status) X", "Content-Length: \(body.count)", "Connection: close"] + headers
            send(Array((lines.joined(separator: "\r\n") + "\r\n\r\n").utf8) + body)
        case .stall(let seconds):
            usleep(UInt32(seconds * 1_000_000))
            send(Array("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".utf8))
        case .reset:
            var linger = linger(l_onoff: 1, l_linger: 0)
            setsockopt(connection, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<linger>.size))
        case .chunked(let count):
            send(Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".utf8))
            var remaining = count
            while remaining > 0 {
                let size = min(remaining, 4096)
                send(Array((String(size, radix: 16) + "\r\n").utf8) + [UInt8](repeating: 0x20, count: size) + [13, 10])
                remaining -= size
            }
            send(Array("0\r\n\r\n".utf8))
        }
    }
}
