import ArgumentParser
import FoundationEssentials
import Glibc
import IAPAuth

/// `iap-proxy mint`: an ES256 assertion shaped like IAP's, for local development and tests. It
/// signs with a key you generated; `serve` accepts it only if configured with that key's set.
struct MintCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mint",
        abstract: "Mint an ES256 IAP-style JWT (compact form on stdout) with a local key.",
        discussion: """
            Example:
              iap-proxy mint --key dev-keys/private.pem --kid dev-1 \\
                --audience /projects/123/global/backendServices/456 --email alice@example.com --hd example.com
            --claim NAME=VALUE adds or overrides a claim; VALUE is read as JSON when it parses \
            (numbers, true, arrays, "quoted strings"), otherwise as a string; dots nest \
            (--claim 'google.access_levels=["accessPolicies/1/accessLevels/corp"]').
            """
    )

    @Option(help: "PEM file with the P-256 private key (from keygen).") var key: String
    @Option(help: "Key ID to put in the header.") var kid: String
    @Option(help: "The aud claim.") var audience: String
    @Option(help: "The email claim.") var email: String
    @Option(help: "The hd claim (Workspace domain).") var hd: String?
    @Option(help: "The sub claim (default: accounts.google.com:<digits derived from the email>).") var sub: String?
    @Option(help: "Issued-at, epoch seconds (default: now).") var iat: Int64?
    @Option(help: "Expiry, epoch seconds.") var exp: Int64?
    @Option(help: "Lifetime in seconds (default 600, IAP's).") var ttl: Int64?
    @Option(help: "The iss claim.") var issuer = "https://cloud.google.com/iap"
    @Option(name: .customLong("claim"), help: "Extra claim NAME=VALUE (repeatable).") var claims: [String] = []

    func validate() throws {
        if exp != nil && ttl != nil { throw ValidationError("give --exp or --ttl, not both") }
        if kid.isEmpty { throw ValidationError("--kid must not be empty") }
    }

    func run() throws {
        let pem: String
        do {
            pem = try String(contentsOfFile: key, encoding: .utf8)
        } catch {
            throw configurationError("cannot read --key \(key): \(error.localizedDescription)")
        }
        let signingKey: SigningKey
        do {
            signingKey = try SigningKey.fromPEM(pem)
        } catch {
            throw configurationError("--key \(key): \(error.reason)")
        }
        let issuedAt = iat ?? wallClockSeconds()
        let expiresAt = exp ?? issuedAt + (ttl ?? 600)
        var payload = ClaimTree()
        payload.set(["aud"], .string(audience))
        payload.set(["email"], .string(email))
        payload.set(["exp"], .number(String(expiresAt)))
        payload.set(["iat"], .number(String(issuedAt)))
        payload.set(["iss"], .string(issuer))
        payload.set(["sub"], .string(sub ?? Self.defaultSubject(for: email)))
        if let hd { payload.set(["hd"], .string(hd)) }
        for claim in claims {
            guard let equals = claim.firstIndex(of: "="), equals != claim.startIndex else {
                throw configurationError("--claim \(claim.debugDescription) is not NAME=VALUE")
            }
            let path = claim[..<equals].split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            guard path.allSatisfy({ !$0.isEmpty }) else { throw configurationError("--claim \(claim.debugDescription): empty name") }
            let text = String(claim[claim.index(after: equals)...])
            payload.set(path, (try? JSONValue.parse(text)) ?? .string(text))
        }
        let header = JSONValue.object(
            JSONObject([
                .init(name: "alg", value: .string("ES256")), .init(name: "typ", value: .string("JWT")),
                .init(name: "kid", value: .string(kid)),
            ]))
        print(try signingKey.compactJWS(header: header, claims: payload.value))
    }

    /// A stable, Google-looking subject for an email: "1" and 20 digits of its FNV-1a hash.
    static func defaultSubject(for email: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in email.lowercased().utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        let digits = String(hash)
        return "accounts.google.com:1" + String(repeating: "0", count: 20 - digits.count) + digits
    }
}

/// Claims as a tree of ordered objects, so dotted `--claim` names nest.
struct ClaimTree {
    private(set) var members: [(String, ClaimValue)] = []

    indirect enum ClaimValue {
        case leaf(JSONValue)
        case tree(ClaimTree)
    }

    mutating func set(_ path: [String], _ value: JSONValue) {
        let name = path[0]
        let index = members.firstIndex { $0.0 == name }
        if path.count == 1 {
            if let index { members[index].1 = .leaf(value) } else { members.append((name, .leaf(value))) }
            return
        }
        var child = ClaimTree()
        if let index, case .tree(let existing) = members[index].1 { child = existing }
        child.set(Array(path.dropFirst()), value)
        if let index { members[index].1 = .tree(child) } else { members.append((name, .tree(child))) }
    }

    var value: JSONValue {
        .object(
            JSONObject(
                members.map { name, value in
                    switch value {
                    case .leaf(let leaf): return .init(name: name, value: leaf)
                    case .tree(let tree): return .init(name: name, value: tree.value)
                    }
                }))
    }
}
