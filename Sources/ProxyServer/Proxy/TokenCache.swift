import Glibc
import HTTP1
import IAPAuth

/// Verified tokens of one event loop, keyed by the token's full bytes, so a browser's repeated
/// requests skip ECDSA (Envoy's `jwt_cache`). An entry is used only under the key-set generation
/// it was verified with and until `exp` plus the leeway; the allowlist is still checked on every
/// request, so a revoked user is refused at once.
///
/// Two generations bound it, without per-entry bookkeeping: new entries go
/// to `recent`; when it holds half the capacity it becomes `older` and the previous `older` is
/// dropped whole, and a hit in `older` moves back to `recent`. A token in use therefore stays,
/// expired ones age out within two turns, and no operation scans the table. (Removing a quarter
/// of a Swift dictionary's keys in storage order instead left probe chains thousands of buckets
/// long: 1.1 ms per lookup at 10,000 entries under fresh tokens.)
final class TokenCache {
    private struct Entry {
        let identity: Identity
        let headers: [ExtraField]
        /// The templates `headers` came from; another route's templates are rendered afresh.
        let renderedFrom: IdentityHeaders
        let validUntil: Int64
        let generation: UInt64
    }

    private var recent: [TokenKey: Entry] = [:]
    private var older: [TokenKey: Entry] = [:]
    private let generationSize: Int
    private(set) var hits = 0
    private(set) var misses = 0

    init(capacity: Int) { generationSize = capacity > 0 ? max(1, capacity / 2) : 0 }

    func lookup(_ token: ArraySlice<UInt8>, now: Int64, generation: UInt64, headers: IdentityHeaders)
        -> (Identity, [ExtraField])?
    {
        let key = TokenKey(token)
        var entry = recent[key]
        let fromOlder = entry == nil
        if fromOlder { entry = older.removeValue(forKey: key) }
        guard let entry, entry.generation == generation, now <= entry.validUntil else {
            if !fromOlder { recent[key] = nil }
            misses += 1
            return nil
        }
        if fromOlder { store(key, entry) }  // still in use: keep it
        hits += 1
        guard entry.renderedFrom == headers else { return (entry.identity, Worker.render(headers, entry.identity)) }
        return (entry.identity, entry.headers)
    }

    func insert(
        _ token: ArraySlice<UInt8>, identity: Identity, headers: [ExtraField], renderedFrom: IdentityHeaders,
        validUntil: Int64, generation: UInt64
    ) {
        guard generationSize > 0 else { return }
        // Store a compact copy: the slice would keep the whole request head alive.
        store(TokenKey(ArraySlice(Array(token))), Entry(
            identity: identity, headers: headers, renderedFrom: renderedFrom, validUntil: validUntil, generation: generation))
    }

    private func store(_ key: TokenKey, _ entry: Entry) {
        if recent.count >= generationSize {
            older = recent
            recent = Dictionary(minimumCapacity: generationSize)
        }
        recent[key] = entry
    }

    var count: Int { recent.count + older.count }
}

/// Token bytes as a dictionary key. Only the last 64 bytes are hashed (a tenth of an IAP
/// assertion): a token ends with its signature, and different signed bytes have different
/// signatures (ES256 adds a fresh nonce besides), so the tail is as distinct as the whole.
/// Equality still compares every byte, and only verified tokens are stored, so no one can fill the
/// table with keys that collide.
private struct TokenKey: Hashable {
    let bytes: ArraySlice<UInt8>

    init(_ bytes: ArraySlice<UInt8>) { self.bytes = bytes }

    func hash(into hasher: inout Hasher) {
        bytes.suffix(64).withUnsafeBytes { hasher.combine(bytes: $0) }
    }

    static func == (lhs: TokenKey, rhs: TokenKey) -> Bool {
        lhs.bytes.count == rhs.bytes.count
            && lhs.bytes.withUnsafeBytes { left in
                rhs.bytes.withUnsafeBytes { right in left.isEmpty || memcmp(left.baseAddress!, right.baseAddress!, left.count) == 0 }
            }
    }
}
