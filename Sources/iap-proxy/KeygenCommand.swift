import ArgumentParser
import FoundationEssentials
import Glibc
import IAPAuth

/// `iap-proxy keygen --out DIR [--kid KID]`: a P-256 key pair for local development and tests.
struct KeygenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Generate a P-256 signing key (DIR/private.pem) and its JWK set (DIR/jwks.json).",
        discussion: """
            For local development and tests only: tokens minted with this key are accepted by \
            `serve` only when it is pointed at this jwks.json (--jwks-file).
            Example: iap-proxy keygen --out ./dev-keys --kid dev-1
            """
    )

    @Option(help: "Directory to write private.pem (mode 0600) and jwks.json into; created if missing.")
    var out: String

    @Option(help: "Key ID (default: the key's RFC 7638 thumbprint, shortened).")
    var kid: String?

    @Flag(help: "Overwrite an existing private.pem.")
    var force = false

    func run() throws {
        let directory = URL(fileURLWithPath: out)
        let privatePath = directory.appendingPathComponent("private.pem").path
        let jwksPath = directory.appendingPathComponent("jwks.json").path
        if FileManager.default.fileExists(atPath: privatePath) && !force {
            throw configurationError("\(privatePath) exists; pass --force to replace it")
        }
        try FileManager.default.createDirectory(
            at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let key = try SigningKey.generateP256()
        let kid = kid ?? String(key.thumbprint().prefix(16))
        guard !kid.isEmpty else { throw configurationError("--kid must not be empty") }
        // Create the private key file 0600 from the start (never world-readable, even briefly).
        let descriptor = open(privatePath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw configurationError("cannot write \(privatePath): \(String(cString: strerror(errno)))") }
        let pem = Array(key.pkcs8PEM().utf8)
        let written = pem.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        close(descriptor)
        guard written == pem.count else { throw configurationError("cannot write \(privatePath)") }
        chmod(privatePath, 0o600)
        let jwks = JSONValue.object(JSONObject([.init(name: "keys", value: .array([key.publicJWK(kid: kid)]))]))
        try Data((jwks.serialized() + "\n").utf8).write(to: URL(fileURLWithPath: jwksPath), options: .atomic)
        print("wrote \(privatePath) (P-256 private key, PKCS#8, mode 0600)")
        print("wrote \(jwksPath) (JWK set, kid \(kid))")
    }
}
