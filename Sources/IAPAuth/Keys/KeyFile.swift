#if canImport(Glibc)
import Glibc
#endif

/// Key sets on disk: `--jwks-file` (works with no network at all) and the refresher's cache of
/// the last good set.
public enum KeyFile {
    /// Reads and parses a key set file (JWK set or PEM map).
    public static func load(_ path: String) throws(KeyImportError) -> KeySet {
        guard let bytes = read(path, limit: 1 << 20) else {
            throw KeyImportError("cannot read key file \(path): \(String(cString: strerror(errno)))")
        }
        do {
            return try KeySet.parse(bytes)
        } catch {
            throw KeyImportError("\(path): \(error.reason)")
        }
    }

    /// The file's bytes, or nil when unreadable or larger than `limit`.
    static func read(_ path: String, limit: Int) -> [UInt8]? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { return nil }
            if count == 0 { return bytes }
            bytes.append(contentsOf: chunk.prefix(count))
            if bytes.count > limit {
                errno = EFBIG
                return nil
            }
        }
    }

    /// Replaces `path` atomically (write a temporary file beside it, fsync, rename), so a reader
    /// never sees half a key set.
    static func writeAtomically(_ path: String, _ bytes: [UInt8]) -> Bool {
        let temporary = "\(path).tmp.\(getpid())"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { return false }
        var written = 0
        while written < bytes.count {
            let count = bytes[written...].withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            written += count
        }
        let synced = fsync(descriptor) == 0
        close(descriptor)
        guard written == bytes.count, synced, rename(temporary, path) == 0 else {
            unlink(temporary)
            return false
        }
        return true
    }
}
