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
    /// Where released memory goes and new memory comes from: the owning loop's, or none.
    private let pool: BufferPool?

    init(pool: BufferPool? = nil) { self.pool = pool }

    deinit { release() }

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
        release()
    }

    private func release() {
        guard let storage else { return }
        if let pool { pool.give(storage, capacity: capacity) } else { storage.deallocate() }
        self.storage = nil
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
            let grown = pool?.take(capacity: newCapacity) ?? .allocate(byteCount: newCapacity, alignment: 16)
            if let storage, unread > 0 { grown.copyMemory(from: storage + readerIndex, byteCount: unread) }
            release()
            storage = grown
            capacity = newCapacity
        }
        readerIndex = 0
        writerIndex = unread
    }
}

/// Buffer memory a loop keeps for reuse. Connections give their buffers back whenever they run
/// empty (so idle ones hold nothing); under load that is every request, and without the pool each
/// request allocated and freed its read buffers (64 KiB upstream, 16 KiB client) and head buffers.
/// Bounded: of each power-of-two size up to 64 KiB, 256 KiB of blocks and at least 16 (~3 MiB per
/// loop). The many small blocks are for heads: an iteration's requests and answers wait in their
/// buffers until it ends (`Worker.flushAtIterationEnd`), up to one per event of its batch of 256,
/// and with 16 kept, 1,000 busy connections allocated ~3 of them per request.
/// Used only on its loop's thread, like the connections that own the buffers.
final class BufferPool {
    private static let smallest = 1024
    private static let largest = 64 * 1024
    private static let bytesPerSize = 256 * 1024
    private static let minimumPerSize = 16
    // One loop only, and no call out while an access lasts: the dynamic exclusivity check (a thread-local
    // lookup on every take and give) buys nothing here.
    @exclusivity(unchecked) private var free: [[UnsafeMutableRawPointer]]

    init() {
        let sizes = (Self.largest / Self.smallest).trailingZeroBitCount + 1
        free = (0..<sizes).map { size in
            var blocks: [UnsafeMutableRawPointer] = []
            blocks.reserveCapacity(Self.limit(size))
            return blocks
        }
    }

    /// How many blocks of a size class are kept.
    private static func limit(_ sizeClass: Int) -> Int { max(minimumPerSize, bytesPerSize / (smallest << sizeClass)) }

    deinit { for blocks in free { for block in blocks { block.deallocate() } } }

    /// Blocks kept for reuse, of all sizes.
    var blocksHeld: Int { free.reduce(0) { $0 + $1.count } }

    /// The size class of a ByteBuffer capacity (a power of two from 1 KiB), nil when not pooled.
    private func sizeClass(_ capacity: Int) -> Int? {
        guard capacity >= Self.smallest, capacity <= Self.largest, capacity.nonzeroBitCount == 1 else { return nil }
        return (capacity / Self.smallest).trailingZeroBitCount
    }

    func take(capacity: Int) -> UnsafeMutableRawPointer? {
        guard let size = sizeClass(capacity) else { return nil }
        return free[size].popLast()
    }

    func give(_ block: UnsafeMutableRawPointer, capacity: Int) {
        guard let size = sizeClass(capacity), free[size].count < Self.limit(size) else { return block.deallocate() }
        free[size].append(block)
    }
}
