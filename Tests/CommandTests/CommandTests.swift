import Foundation
import Testing

/// The commands run as a user would: a subprocess, its exit code, stdout and stderr.
@Suite("Commands")
struct CommandTests {
    struct Run {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    /// The `iap-proxy` binary built beside this test bundle.
    static let binary: URL = {
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        if directory.lastPathComponent.hasSuffix(".xctest") { directory = directory.deletingLastPathComponent() }
        for candidate in [directory, directory.deletingLastPathComponent()] {
            let path = candidate.appendingPathComponent("iap-proxy")
            if FileManager.default.isExecutableFile(atPath: path.path) { return path }
        }
        return directory.appendingPathComponent("iap-proxy")
    }()

    @discardableResult
    static func run(_ arguments: [String], stdin: String? = nil) throws -> Run {
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        let output = Pipe()
        let errors = Pipe()
        let input = Pipe()
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = input
        try process.run()
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try input.fileHandleForWriting.close()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        let err = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Run(
            status: process.terminationStatus, stdout: String(decoding: out, as: UTF8.self),
            stderr: String(decoding: err, as: UTF8.self))
    }

    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("iap-cmd-\(UUID().uuidString)")
    let audience = "/projects/123/global/backendServices/456"
    var keys: String { directory.path }
    var jwks: String { directory.appendingPathComponent("jwks.json").path }
    var privateKey: String { directory.appendingPathComponent("private.pem").path }

    func keygen() throws {
        let result = try Self.run(["keygen", "--out", keys, "--kid", "test-1"])
        #expect(result.status == 0, "\(result.stderr)")
    }

    func mint(_ extra: [String] = []) throws -> String {
        let result = try Self.run(
            ["mint", "--key", privateKey, "--kid", "test-1", "--audience", audience, "--email", "Alice@Example.com",
             "--hd", "example.com"] + extra)
        #expect(result.status == 0, "\(result.stderr)")
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func verify(_ token: String, _ extra: [String] = []) throws -> Run {
        try Self.run(["verify", "--audience", audience, "--jwks-file", jwks] + extra + [token])
    }

    @Test("keygen writes a 0600 PKCS#8 key and a Google-style JWK set")
    func keygenFiles() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        try keygen()
        let attributes = try FileManager.default.attributesOfItem(atPath: privateKey)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        #expect(try String(contentsOfFile: privateKey, encoding: .utf8).hasPrefix("-----BEGIN PRIVATE KEY-----"))
        let set = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: jwks))) as! [String: Any]
        let key = (set["keys"] as! [[String: Any]])[0]
        #expect(key["kid"] as? String == "test-1" && key["kty"] as? String == "EC" && key["crv"] as? String == "P-256")
        #expect(key["use"] as? String == "sig" && key["alg"] as? String == "ES256" && key["d"] == nil)
        // A second keygen into the same place refuses to overwrite the key.
        #expect(try Self.run(["keygen", "--out", keys]).status == 2)
    }

    @Test("keygen → mint → verify: exit 0 and the claims as JSON")
    func roundTrip() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        try keygen()
        let token = try mint(["--claim", "google.access_levels=[\"accessPolicies/1/accessLevels/corp\"]"])
        let result = try verify(token)
        #expect(result.status == 0, "\(result.stderr)")
        let claims = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as! [String: Any]
        #expect(claims["email"] as? String == "Alice@Example.com")
        #expect(claims["aud"] as? String == audience)
        #expect(claims["hd"] as? String == "example.com")
        #expect(((claims["google"] as? [String: Any])?["access_levels"] as? [String]) == ["accessPolicies/1/accessLevels/corp"])
        // The token read from stdin (with the newline echo adds).
        let piped = try Self.run(["verify", "--audience", audience, "--jwks-file", jwks, "-"], stdin: token + "\n")
        #expect(piped.status == 0, "\(piped.stderr)")
    }

    @Test("Tampered, expired and wrong-audience tokens: exit 1 with the reason code")
    func rejections() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        try keygen()
        let token = try mint()
        var tampered = Array(token)
        let index = tampered.index(tampered.endIndex, offsetBy: -10)
        tampered[index] = tampered[index] == "A" ? "B" : "A"
        let cases: [(String, [String], String)] = [
            (String(tampered), [], "bad-signature"),
            (try mint(["--iat", "1000", "--ttl", "600"]), [], "expired"),
            (token, ["--audience", "/projects/123/global/backendServices/999"], "wrong-audience"),
        ]
        for (candidate, extra, reason) in cases {
            let result = try Self.run(
                ["verify", "--jwks-file", jwks] + (extra.isEmpty ? ["--audience", audience] : extra) + [candidate])
            #expect(result.status == 1, "\(reason): \(result.stderr)")
            #expect(result.stderr.hasPrefix("rejected: \(reason)\n"), "\(result.stderr)")
            #expect(result.stdout.isEmpty)
        }
        // The leeway boundary, from the command line.
        let expiry = try mint(["--iat", "2000000000", "--ttl", "600"])
        #expect(try verify(expiry, ["--now", "2000000630"]).status == 0)
        #expect(try verify(expiry, ["--now", "2000000631"]).stderr.hasPrefix("rejected: expired"))
    }

    @Test("Usage and configuration errors exit 2")
    func usageErrors() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        try keygen()
        let token = try mint()
        let errors: [[String]] = [
            ["verify", token],  // no audience
            ["verify", "--audience", "my-app", "--jwks-file", jwks, token],  // not an IAP audience
            ["verify", "--audience", audience, "--jwks-file", "/nonexistent.json", token],
            ["verify", "--audience", audience, "--jwks-url", "http://example.com/keys", token],
            ["verify", "--audience", audience, "--jwks-file", jwks, "--allow-alg", "HS256", token],
            ["verify", "--audience", audience, "--jwks-file", jwks, "--leeway", "-5", token],
            ["mint", "--key", privateKey, "--kid", "k", "--audience", audience, "--email", "e", "--exp", "1", "--ttl", "1"],
            ["mint", "--key", jwks, "--kid", "k", "--audience", audience, "--email", "e"],
            ["no-such-command"],
            ["verify", "--bogus-flag"],
        ]
        for arguments in errors {
            let result = try Self.run(arguments)
            #expect(result.status == 2, "\(arguments): \(result.status) \(result.stderr)")
            #expect(!result.stderr.isEmpty)
        }
        #expect(try Self.run(["--help"]).status == 0)
    }
}
