import CLinux
import Glibc

/// Socket set-up calls, all non-blocking and close-on-exec.
enum Socket {
    /// A listening socket with SO_REUSEPORT, so every event loop can own one on the same port
    /// and the kernel spreads connections between them.
    static func listen(on address: SocketAddress, backlog: Int32 = 4096) throws(IOError) -> Int32 {
        let fd = Glibc.socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw IOError(call: "socket", errno: errno) }
        setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1)
        setOption(fd, SOL_SOCKET, SO_REUSEPORT, 1)
        if address.family == AF_INET6 { setOption(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, 0) }
        let bound = address.withSockaddr { Glibc.bind(fd, $0, $1) }
        guard bound == 0, Glibc.listen(fd, backlog) == 0 else {
            let error = IOError(call: bound == 0 ? "listen" : "bind \(address)", errno: errno)
            close(fd)
            throw error
        }
        return fd
    }

    /// Starts a non-blocking connect; completion is signalled by EPOLLOUT.
    static func connect(to address: SocketAddress) throws(IOError) -> Int32 {
        let fd = Glibc.socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw IOError(call: "socket", errno: errno) }
        setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
        let result = address.withSockaddr { Glibc.connect(fd, $0, $1) }
        if result != 0 && errno != EINPROGRESS {
            let error = IOError(call: "connect \(address)", errno: errno)
            close(fd)
            throw error
        }
        return fd
    }

    /// Accepts one connection, or nil when none is pending.
    static func accept(_ listener: Int32) throws(IOError) -> (fd: Int32, peer: SocketAddress)? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let outcome = try withUnsafeMutablePointer(to: &storage) { pointer throws(IOError) in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address throws(IOError) in
                try syscall("accept4") { clinux_accept4(listener, address, &length) }
            }
        }
        guard case .done(let fd) = outcome else { return nil }
        setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
        let peer = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { SocketAddress(copying: $0, length: length) }
        }
        return (fd, peer)
    }

    /// The pending error of a socket (a finished non-blocking connect), 0 when none.
    static func pendingError(_ fd: Int32) -> Int32 {
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
        return error
    }

    /// The address a socket is bound to (to learn an ephemeral port).
    static func localAddress(_ fd: Int32) -> SocketAddress? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) == 0 }
        }
        guard ok else { return nil }
        return withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { SocketAddress(copying: $0, length: length) }
        }
    }

    static func setOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32) {
        var value = value
        setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Reads into `buffer`; 0 means the peer closed its side.
    static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(IOError) -> IOResult<Int> {
        try syscall("read") { Glibc.read(fd, buffer.baseAddress, buffer.count) }
    }

    /// Writes what the socket takes now (MSG_NOSIGNAL: a closed peer is an error, not SIGPIPE).
    static func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws(IOError) -> IOResult<Int> {
        try syscall("send") { Glibc.send(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Ends the write side: the peer reads EOF, we can still read.
    static func shutdownWrite(_ fd: Int32) { Glibc.shutdown(fd, Int32(SHUT_WR)) }

    /// Closes with an RST instead of a FIN (a broken exchange must not look complete).
    static func abort(_ fd: Int32) {
        var value = linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &value, socklen_t(MemoryLayout<linger>.size))
        close(fd)
    }
}
