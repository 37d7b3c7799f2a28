import Testing

@testable import ProxyServer

@Suite("Buffer pool: released buffer memory is reused, within a bound")
struct BufferPoolTests {
    func filled(_ buffer: ByteBuffer, _ count: Int, _ seed: UInt8) {
        buffer.append((0..<count).map { UInt8(truncatingIfNeeded: $0) &+ seed })
    }

    @Test("an emptied buffer's memory goes back to the pool and serves the next buffer")
    func reuse() {
        let pool = BufferPool()
        let first = ByteBuffer(pool: pool)
        filled(first, 100, 1)
        let block = first.readable.baseAddress
        first.consume(100)
        first.releaseIfEmpty()
        #expect(pool.blocksHeld == 1)
        let second = ByteBuffer(pool: pool)
        filled(second, 200, 2)
        #expect(second.readable.baseAddress == block)
        #expect(pool.blocksHeld == 0)
        #expect(Array(second.readable) == (0..<200).map { UInt8(truncatingIfNeeded: $0) &+ 2 })
    }

    @Test("growing through pooled sizes keeps the bytes; a dropped buffer returns its memory")
    func growth() {
        let pool = BufferPool()
        var buffer: ByteBuffer? = ByteBuffer(pool: pool)
        var expected: [UInt8] = []
        for round in 0..<10 {
            let chunk = (0..<3000).map { UInt8(truncatingIfNeeded: $0 * 7 + round) }
            buffer!.append(chunk)
            expected += chunk
        }
        #expect(Array(buffer!.readable) == expected)
        #expect(pool.blocksHeld > 0)  // the smaller blocks it grew out of
        let held = pool.blocksHeld
        buffer = nil
        #expect(pool.blocksHeld == held + 1)
    }

    @Test("the pool keeps 256 KiB of each size (at least 16 blocks) and frees the rest")
    func bounded() {
        let pool = BufferPool()
        func churn(_ count: Int, bytes: Int) {
            let buffers = (0..<count).map { _ in ByteBuffer(pool: pool) }
            for (index, buffer) in buffers.enumerated() { filled(buffer, bytes, UInt8(truncatingIfNeeded: index)) }
            for buffer in buffers {
                buffer.consume(bytes)
                buffer.releaseIfEmpty()
            }
        }
        churn(300, bytes: 10)  // 1 KiB blocks: 256 kept
        #expect(pool.blocksHeld == 256)
        churn(40, bytes: 40_000)  // 64 KiB blocks: 16 kept
        #expect(pool.blocksHeld == 256 + 16)
        // Larger than the largest pooled size: never kept.
        churn(1, bytes: 100_000)
        #expect(pool.blocksHeld == 256 + 16)
    }
}
