import CLinux
import Glibc

/// A blocking one-shot `GET` for health checks (`iap-proxy probe`, the container's HEALTHCHECK):
/// true when the answer is 200 within the timeout.
public enum Probe {
    public static func get(_ address: SocketAddress, path: String, timeoutMilliseconds: Int = 2000) -> Bool {
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var timeout = timeval(tv_sec: timeoutMilliseconds / 1000, tv_usec: (timeoutMilliseconds % 1000) * 1000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard address.withSockaddr({ Glibc.connect(fd, $0, $1) }) == 0 else { return false }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: \(address)\r\nConnection: close\r\n\r\n".utf8)
        guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == request.count else {
            return false
        }
        var response = [UInt8](repeating: 0, count: 64)
        let count = recv(fd, &response, response.count, 0)
        return count >= 12 && response[0..<9].elementsEqual("HTTP/1.1 ".utf8) && response[9..<12].elementsEqual("200".utf8)
    }
}
