/// A growable byte queue owned by one connection: bytes are appended at the back (by `read` or
/// `append`) and consumed from the front. It holds no memory while empty and released, so an idle
/// keep-alive connection costs a few hundred bytes, not a buffer.
///
/// A class, not a struct: it owns raw memory and is never shared or copied.
final class ByteBuffer {
    private var storage: UnsafeMutableRawPointer?
    private var capacity = 0
    private var readerIndex = 0
    private var writerIndex = 0

    init() {}

    deinit { storage?.deallocate() }

    var count: Int { writerIndex - readerIndex }
    var isEmpty: Bool { readerIndex == writerIndex }

    /// The unread bytes. Valid until the next mutation.
    var readable: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: storage.map { $0 + readerIndex }, count: count)
    }

    /// Room for at least `minimum` more bytes at the back, growing up to `preferred` when it must
    /// grow. Call `commit` with what was written.
    func writable(minimum: Int, preferred: Int) -> UnsafeMutableRawBufferPointer {
        if capacity - writerIndex < minimum { makeRoom(for: minimum, preferred: preferred) }
        return UnsafeMutableRawBufferPointer(start: storage! + writerIndex, count: capacity - writerIndex)
    }

    func commit(_ written: Int) { writerIndex += written }

    func append(_ bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty else { return }
        let target = writable(minimum: bytes.count, preferred: bytes.count)
        target.copyMemory(from: bytes)
        writerIndex += bytes.count
    }

    func append(_ bytes: [UInt8]) { bytes.withUnsafeBytes { append($0) } }

    func append(_ text: StaticString) {
        append(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    /// Drops `count` bytes from the front; frees the memory once nothing is left unread and the
    /// buffer grew large, so streaming peaks do not stay resident.
    func consume(_ count: Int) {
        readerIndex += count
        if readerIndex == writerIndex {
            readerIndex = 0
            writerIndex = 0
        }
    }

    /// Frees the memory if the buffer is empty (an idle connection keeps nothing).
    func releaseIfEmpty() {
        guard isEmpty, storage != nil else { return }
        storage?.deallocate()
        storage = nil
        capacity = 0
    }

    private func makeRoom(for minimum: Int, preferred: Int) {
        let unread = count
        // Move unread bytes to the front first; grow only if that is not enough.
        if capacity - unread >= minimum, let storage {
            if readerIndex > 0 { storage.copyMemory(from: storage + readerIndex, byteCount: unread) }
        } else {
            let target = max(unread + minimum, preferred)
            var newCapacity = max(capacity, 1024)
            while newCapacity < target { newCapacity *= 2 }
            let grown = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 16)
            if let storage, unread > 0 { grown.copyMemory(from: storage + readerIndex, byteCount: unread) }
            storage?.deallocate()
            storage = grown
            capacity = newCapacity
        }
        readerIndex = 0
        writerIndex = unread
    }
}
