import HTTP1
import IAPAuth

/// Verified tokens of one event loop, keyed by the token's full bytes, so a browser's repeated
/// requests skip ECDSA (Envoy's `jwt_cache`). An entry is used only under the key-set generation
/// it was verified with and until `exp` plus the leeway; the allowlist is still checked on every
/// request, so a revoked user is refused at once.
final class TokenCache {
    private struct Entry {
        let identity: Identity
        let headers: [ExtraField]
        /// The templates `headers` came from; another route's templates are rendered afresh.
        let renderedFrom: IdentityHeaders
        let validUntil: Int64
        let generation: UInt64
    }

    private var entries: [TokenKey: Entry] = [:]
    private let capacity: Int
    private(set) var hits = 0
    private(set) var misses = 0

    init(capacity: Int) { self.capacity = capacity }

    func lookup(_ token: ArraySlice<UInt8>, now: Int64, generation: UInt64, headers: IdentityHeaders)
        -> (Identity, [ExtraField])?
    {
        let key = TokenKey(token)
        guard let entry = entries[key] else {
            misses += 1
            return nil
        }
        guard entry.generation == generation, now <= entry.validUntil else {
            entries[key] = nil
            misses += 1
            return nil
        }
        hits += 1
        guard entry.renderedFrom == headers else { return (entry.identity, Worker.render(headers, entry.identity)) }
        return (entry.identity, entry.headers)
    }

    func insert(
        _ token: ArraySlice<UInt8>, identity: Identity, headers: [ExtraField], renderedFrom: IdentityHeaders,
        validUntil: Int64, generation: UInt64, now: Int64
    ) {
        guard capacity > 0 else { return }
        if entries.count >= capacity { evict(now: now, generation: generation) }
        // Store a compact copy: the slice would keep the whole request head alive.
        entries[TokenKey(ArraySlice(Array(token)))] = Entry(
            identity: identity, headers: headers, renderedFrom: renderedFrom, validUntil: validUntil, generation: generation)
    }

    var count: Int { entries.count }

    /// Drops expired and stale entries; if the cache is still full, a quarter of it.
    private func evict(now: Int64, generation: UInt64) {
        entries = entries.filter { $0.value.generation == generation && now <= $0.value.validUntil }
        if entries.count >= capacity {
            for key in entries.keys.prefix(max(1, capacity / 4)) { entries[key] = nil }
        }
    }
}

/// Token bytes as a dictionary key, hashed in one pass over the bytes.
private struct TokenKey: Hashable {
    let bytes: ArraySlice<UInt8>

    init(_ bytes: ArraySlice<UInt8>) { self.bytes = bytes }

    func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }

    static func == (lhs: TokenKey, rhs: TokenKey) -> Bool {
        lhs.bytes.count == rhs.bytes.count
            && lhs.bytes.withUnsafeBytes { left in rhs.bytes.withUnsafeBytes { right in left.elementsEqual(right) } }
    }
}
