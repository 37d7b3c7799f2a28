// libFuzzer target for IAPAuth's parsers of untrusted bytes (built by Fuzz/run.sh with
// `swiftc -sanitize=fuzzer,address` together with Sources/IAPAuth). The first byte picks the
// parser: strict JSON, a whole token through the verifier (against a fixed key), a JWK set, or an
// allowlist file. Invariants: no crash; JSON that parses serializes and parses back to the same
// value; nothing verifies that was not signed by the fixed key.

nonisolated(unsafe) private var fixture: (Verifier, KeySet)? = nil

private func setUp() -> (Verifier, KeySet) {
    if let fixture { return fixture }
    let key = try! SigningKey.generateP256()
    let jwks = JSONValue.object(JSONObject([.init(name: "keys", value: .array([key.publicJWK(kid: "fuzz")]))]))
    let keys = try! KeySet.parse(Array(jwks.serialized().utf8))
    let verifier = Verifier(config: try! VerifierConfig(audiences: ["/projects/1/apps/fuzz"], algorithms: [.es256, .rs256]))
    fixture = (verifier, keys)
    return fixture!
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzAuth(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size > 0 else { return 0 }
    let input = UnsafeRawBufferPointer(start: data + 1, count: size - 1)
    switch data[0] % 4 {
    case 0:
        if let value = try? JSONValue.parse(input) {
            let again = try? JSONValue.parse(value.serialized())
            precondition(again == value, "JSON did not round-trip")
        }
    case 1:
        let (verifier, keys) = setUp()
        if case .success = verifier.verify(input, keys: keys, now: 1_800_000_000) {
            preconditionFailure("a fuzzed token verified against a key nobody signed with")
        }
    case 2:
        _ = try? KeySet.parse(Array(input))
    default:
        _ = Allowlist.parse(String(decoding: input, as: UTF8.self))
    }
    return 0
}
