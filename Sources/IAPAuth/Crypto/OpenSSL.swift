import COpenSSL

#if canImport(Glibc)
import Glibc
#endif

/// Small helpers shared by the `Crypto/` files, the only ones that talk to libcrypto.
enum OpenSSL {
    /// Empties this thread's OpenSSL error queue and returns its first entry as text. Every
    /// failure path calls this (or `ERR_clear_error`), so the thread-local queue never grows.
    static func drainErrors() -> String {
        let code = ERR_get_error()
        ERR_clear_error()
        guard code != 0 else { return "no OpenSSL error recorded" }
        var buffer = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &buffer, buffer.count)
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Runs `body` with a read-only memory BIO over `text`. The BIO keeps the pointer it is given,
    /// so the bytes stay pinned for the whole call (an implicit array-to-pointer conversion is
    /// valid only for one C call: fuzzing caught PEM_read reading freed memory).
    static func withMemoryBIO<Result>(_ text: String, _ body: (OpaquePointer) throws(KeyImportError) -> Result)
        throws(KeyImportError) -> Result
    {
        let bytes = Array(text.utf8)
        return try bytes.withUnsafeBytes { buffer in
            Swift.Result { () throws(KeyImportError) in
                guard let bio = BIO_new_mem_buf(buffer.baseAddress, Int32(buffer.count)) else {
                    throw KeyImportError("out of memory")
                }
                defer { BIO_free(bio) }
                return try body(bio)
            }
        }.get()
    }

    /// Runs `body` with C copies of `strings` that stay valid for the whole call. OSSL_PARAM keeps
    /// the pointers it is given (it does not copy keys or values), so temporaries would dangle.
    static func withCStrings<Result>(
        _ strings: [String], _ body: ([UnsafeMutablePointer<CChar>]) throws -> Result
    ) rethrows -> Result {
        let pointers = strings.map { strdup($0)! }
        defer { pointers.forEach { free($0) } }
        return try body(pointers)
    }
}

/// A digest fetched once and shared by every thread (fetching per call takes a global lock in
/// OpenSSL 3.0: openssl#20286). A fetched `EVP_MD` is immutable and safe to share.
final class MessageDigest: @unchecked Sendable {
    let pointer: OpaquePointer

    static let sha256 = MessageDigest(name: "SHA256")
    static let sha1 = MessageDigest(name: "SHA1")

    private init(name: String) {
        guard let md = EVP_MD_fetch(nil, name, nil) else {
            fatalError("libcrypto cannot fetch \(name): \(OpenSSL.drainErrors())")
        }
        pointer = md
    }

    deinit { EVP_MD_free(pointer) }

    /// The digest of `bytes` in one call.
    func hash(_ bytes: some Collection<UInt8>) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let ok = Array(bytes).withUnsafeBytes { input in
            EVP_Digest(input.baseAddress, input.count, &output, &length, pointer, nil)
        }
        precondition(ok == 1, "EVP_Digest failed: \(OpenSSL.drainErrors())")
        return Array(output.prefix(Int(length)))
    }
}

/// An incremental digest, for tools that hash streams (the `echo` upstream reports a body's
/// SHA-256; the WebSocket handshake needs SHA-1).
public final class StreamingDigest {
    private let context: OpaquePointer

    public enum Algorithm: String { case sha1 = "SHA1", sha256 = "SHA256" }

    public init(_ algorithm: Algorithm) {
        guard let context = EVP_MD_CTX_new(), EVP_DigestInit_ex2(context, algorithm == .sha256
            ? MessageDigest.sha256.pointer : MessageDigest.sha1.pointer, nil) == 1
        else { fatalError("cannot start \(algorithm.rawValue): \(OpenSSL.drainErrors())") }
        self.context = context
    }

    deinit { EVP_MD_CTX_free(context) }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty else { return }
        precondition(EVP_DigestUpdate(context, bytes.baseAddress, bytes.count) == 1)
    }

    public func finish() -> [UInt8] {
        var output = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        precondition(EVP_DigestFinal_ex(context, &output, &length) == 1)
        return Array(output.prefix(Int(length)))
    }

    /// The digest of `bytes` in one call.
    public static func hash(_ algorithm: Algorithm, _ bytes: [UInt8]) -> [UInt8] {
        let digest = StreamingDigest(algorithm)
        bytes.withUnsafeBytes { digest.update($0) }
        return digest.finish()
    }
}
