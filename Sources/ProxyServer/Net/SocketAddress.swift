import CLinux
import Glibc

/// An IPv4 or IPv6 socket address.
public struct SocketAddress: Sendable, CustomStringConvertible {
    private var storage = sockaddr_storage()
    private(set) var length: socklen_t = 0

    public var family: Int32 { Int32(storage.ss_family) }

    init(copying address: UnsafePointer<sockaddr>, length: socklen_t) {
        withUnsafeMutableBytes(of: &storage) { target in
            target.copyMemory(from: UnsafeRawBufferPointer(start: address, count: Int(length)))
        }
        self.length = length
    }

    /// Parses `HOST:PORT` (`0.0.0.0:8080`, `[::]:8080`, `localhost:9000`), resolving names once.
    /// An empty host means all interfaces (IPv6 dual-stack when available).
    public static func resolve(_ hostPort: String) throws(AddressError) -> SocketAddress {
        let host: String
        let portText: Substring
        if hostPort.hasPrefix("[") {
            guard let close = hostPort.firstIndex(of: "]"), hostPort[hostPort.index(after: close)...].hasPrefix(":") else {
                throw AddressError("\(hostPort.debugDescription) is not [IPv6]:PORT")
            }
            host = String(hostPort[hostPort.index(after: hostPort.startIndex)..<close])
            portText = hostPort[hostPort.index(close, offsetBy: 2)...]
        } else {
            guard let colon = hostPort.lastIndex(of: ":") else { throw AddressError("\(hostPort.debugDescription) is not HOST:PORT") }
            host = String(hostPort[..<colon])
            portText = hostPort[hostPort.index(after: colon)...]
            if host.contains(":") { throw AddressError("write IPv6 addresses as [ADDRESS]:PORT") }
        }
        guard let port = UInt16(portText) else { throw AddressError("\(hostPort.debugDescription): invalid port") }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV | (host.isEmpty ? AI_PASSIVE : 0)
        var results: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host.isEmpty ? nil : host, String(port), &hints, &results)
        guard status == 0, let first = results else {
            throw AddressError("cannot resolve \(host.debugDescription): \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(results) }
        // Prefer IPv4 for names that resolve to both (localhost), as most sidecar upstreams listen there.
        var chosen = first
        var candidate: UnsafeMutablePointer<addrinfo>? = first
        while let entry = candidate {
            if entry.pointee.ai_family == AF_INET {
                chosen = entry
                break
            }
            candidate = entry.pointee.ai_next
        }
        return SocketAddress(copying: chosen.pointee.ai_addr, length: chosen.pointee.ai_addrlen)
    }

    func withSockaddr<Result>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> Result) -> Result {
        withUnsafeBytes(of: storage) { bytes in
            body(bytes.baseAddress!.assumingMemoryBound(to: sockaddr.self), length)
        }
    }

    /// The IP address alone, as X-Forwarded-For and logs want it.
    public var ip: String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        withUnsafeBytes(of: storage) { bytes in
            if family == AF_INET {
                let address = bytes.load(as: sockaddr_in.self)
                withUnsafeBytes(of: address.sin_addr) { _ = inet_ntop(AF_INET, $0.baseAddress, &buffer, socklen_t(buffer.count)) }
            } else if family == AF_INET6 {
                let address = bytes.load(as: sockaddr_in6.self)
                withUnsafeBytes(of: address.sin6_addr) { _ = inet_ntop(AF_INET6, $0.baseAddress, &buffer, socklen_t(buffer.count)) }
            }
        }
        let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        // IPv4 clients of a dual-stack listener appear as ::ffff:a.b.c.d.
        return text.hasPrefix("::ffff:") && text.contains(".") ? String(text.dropFirst(7)) : text
    }

    public var port: UInt16 {
        withUnsafeBytes(of: storage) { bytes in
            family == AF_INET6
                ? UInt16(bigEndian: bytes.load(as: sockaddr_in6.self).sin6_port)
                : UInt16(bigEndian: bytes.load(as: sockaddr_in.self).sin_port)
        }
    }

    /// The same address with another port.
    func withPort(_ port: UInt16) -> SocketAddress {
        var copy = self
        withUnsafeMutableBytes(of: &copy.storage) { bytes in
            let offset = family == AF_INET6
                ? MemoryLayout<sockaddr_in6>.offset(of: \sockaddr_in6.sin6_port)!
                : MemoryLayout<sockaddr_in>.offset(of: \sockaddr_in.sin_port)!
            bytes.storeBytes(of: port.bigEndian, toByteOffset: offset, as: UInt16.self)
        }
        return copy
    }

    public var description: String { family == AF_INET6 ? "[\(ip)]:\(port)" : "\(ip):\(port)" }
}

public struct AddressError: Error, Sendable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
