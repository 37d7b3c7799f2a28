import Foundation

/// The published test vectors in `../shared/vectors`, read in place and never copied into the repo.
/// `IAP_PROXY_VECTORS` overrides the location. A missing file is a failure, not a skip.
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

    /// The JSON object in `path`, relative to the vectors folder.
    static func object(_ path: String) throws -> [String: Any] {
        let url = directory.appendingPathComponent(path)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw VectorError("vector file \(url.path) is missing; set IAP_PROXY_VECTORS to the vectors folder")
        }
        guard let object = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any] else {
            throw VectorError("\(path) is not a JSON object")
        }
        return object
    }
}

struct VectorError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension Dictionary where Key == String, Value == Any {
    func string(_ key: String) throws -> String {
        guard let value = self[key] as? String else { throw VectorError("missing string \(key)") }
        return value
    }

    func objects(_ key: String) throws -> [[String: Any]] {
        guard let value = self[key] as? [[String: Any]] else { throw VectorError("missing array \(key)") }
        return value
    }

    /// The bytes of a base64 member.
    func base64(_ key: String) throws -> [UInt8] {
        guard let data = Data(base64Encoded: try string(key)) else { throw VectorError("\(key) is not base64") }
        return [UInt8](data)
    }
}
