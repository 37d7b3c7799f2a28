import Foundation
import Testing

@testable import IAPAuth

/// The published test vectors in `../shared/vectors` (read in place, never copied into the repo).
/// `IAP_PROXY_VECTORS` overrides the location.
enum Vectors {
    static let directory: URL = {
        if let override = ProcessInfo.processInfo.environment["IAP_PROXY_VECTORS"] {
            return URL(fileURLWithPath: override)
        }
        let packageRoot = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return packageRoot.appendingPathComponent("../shared/vectors").standardizedFileURL
    }()

    static func data(_ path: String) throws -> Data {
        let url = directory.appendingPathComponent(path)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw VectorError("vector file \(url.path) is missing; set IAP_PROXY_VECTORS to the vectors folder")
        }
        return try Data(contentsOf: url)
    }

    static func bytes(_ path: String) throws -> [UInt8] { [UInt8](try data(path)) }

    static func object(_ path: String) throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: data(path)) as? [String: Any] else {
            throw VectorError("\(path) is not a JSON object")
        }
        return object
    }
}

struct VectorError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension [UInt8] {
    init(hex: String) {
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            bytes.append(UInt8(hex[index..<next], radix: 16)!)
            index = next
        }
        self = bytes
    }
}

/// Re-serializes a JSONSerialization value so our own parser sees it.
func jsonBytes(_ value: Any) throws -> [UInt8] {
    [UInt8](try JSONSerialization.data(withJSONObject: value, options: [.sortedKeys]))
}

func keySet(jwks value: Any) throws -> KeySet { try KeySet.parse(try jsonBytes(value)) }

extension Dictionary where Key == String, Value == Any {
    func string(_ key: String) -> String { self[key] as! String }
    func objects(_ key: String) -> [[String: Any]] { self[key] as? [[String: Any]] ?? [] }
    func object(_ key: String) -> [String: Any] { self[key] as! [String: Any] }
    func int64(_ key: String) -> Int64 { (self[key] as! NSNumber).int64Value }
}

/// The public half of a JWK (drops private members), for vector groups that only publish the
/// private key.
func publicJWK(_ jwk: [String: Any]) -> [String: Any] {
    jwk.filter { !["d", "p", "q", "dp", "dq", "qi", "k"].contains($0.key) }
}

extension Result {
    var rejectionReason: RejectionReason? {
        if case .failure(let error) = self, let rejection = error as? Rejection { return rejection.reason }
        return nil
    }
    var isSuccess: Bool {
        if case .success = self { return true }
        return false
    }
}
