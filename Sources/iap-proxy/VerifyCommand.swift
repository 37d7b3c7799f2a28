import ArgumentParser
import FoundationEssentials
import Glibc
import IAPAuth

/// `iap-proxy verify`: the proxy's verifier as a command, for scripts and troubleshooting.
struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Verify an IAP assertion; print its claims as JSON (exit 0) or why it was rejected (exit 1).",
        discussion: """
            Exit codes: 0 verified (claims on stdout); 1 rejected ("rejected: <reason-code>" on stderr); \
            2 usage or configuration error.
            Examples:
              iap-proxy verify --audience /projects/123/global/backendServices/456 "$TOKEN"
              iap-proxy verify --audience /projects/123/apps/my-app --jwks-file dev-keys/jwks.json - < token.txt
            """
    )

    @Option(help: "Accepted aud value (repeatable); IAP's shapes are checked.") var audience: [String] = []
    @Option(help: "JWK set or PEM-map file to verify against (no network).") var jwksFile: String?
    @Option(help: "URL of the key set (default: Google's IAP keys).") var jwksURL: String?
    @Option(help: "Expected iss.") var issuer = VerifierConfig.iapIssuer
    @Option(help: "Verify as of this time (epoch seconds) instead of now.") var now: Int64?
    @Option(help: "Clock skew tolerated on exp/iat/nbf, seconds.") var leeway: Int64 = 30
    @Option(help: "Longest accepted exp − iat before the leeway, seconds (IAP: 600).")
    var maxLifetime: Int64 = VerifierConfig.iapMaximumLifetime
    @Option(name: .customLong("allow-alg"), help: "Accept this algorithm too (RS256 for Google ID tokens).")
    var extraAlgorithms: [String] = []
    @Argument(help: "The token, or - to read it from stdin.") var token: String

    func validate() throws {
        if jwksFile != nil && jwksURL != nil { throw ValidationError("give --jwks-file or --jwks-url, not both") }
        if let now, now < 0 { throw ValidationError("--now must be a non-negative epoch time") }
    }

    func run() throws {
        var algorithms: Set<JWSAlgorithm> = [.es256]
        for name in extraAlgorithms {
            guard let algorithm = JWSAlgorithm(rawValue: name) else {
                throw configurationError("--allow-alg \(name): only \(JWSAlgorithm.allCases.map(\.rawValue)) exist")
            }
            algorithms.insert(algorithm)
        }
        let config: VerifierConfig
        do {
            config = try VerifierConfig(
                audiences: audience, issuer: issuer, leeway: leeway, maximumLifetime: maxLifetime, algorithms: algorithms)
        } catch {
            throw configurationError(error.problems.joined(separator: "\n"))
        }
        let tokenText = try readToken()
        let verifier = Verifier(config: config)
        let moment = now ?? wallClockSeconds()

        var result: Result<Identity, Rejection>
        if let jwksFile {
            let keys: KeySet
            do {
                keys = try KeyFile.load(jwksFile)
            } catch {
                throw configurationError(error.reason)
            }
            result = verifier.verify(tokenText, keys: keys, now: moment)
        } else {
            let fetcher: KeyFetcher
            do {
                fetcher = try KeyFetcher(KeyFetcher.Settings(url: jwksURL ?? KeyFetcher.googleIAPKeysURL))
            } catch {
                throw configurationError(error.reason)
            }
            result = verifier.verify(tokenText, keys: fetchKeys(fetcher), now: moment)
            // A kid we do not know may be a key published since: fetch once more, then decide.
            if result.rejection?.reason == .unknownKid {
                result = verifier.verify(tokenText, keys: fetchKeys(fetcher), now: moment)
            }
        }
        switch result {
        case .success(let identity):
            print(JSONValue.object(identity.claims).serialized(sortedKeys: true))
        case .failure(let rejection):
            printError("rejected: \(rejection.reason.rawValue)")
            if !rejection.detail.isEmpty { printError("detail: \(rejection.detail)") }
            throw ExitCode(1)
        }
    }

    private func fetchKeys(_ fetcher: KeyFetcher) -> KeySet? {
        switch fetcher.fetch() {
        case .success(let response) where response.status == 200:
            do {
                return try KeySet.parse(response.body)
            } catch {
                printError("key set unusable: \(error.reason)")
            }
        case .success(let response):
            printError("key server answered HTTP \(response.status)")
        case .failure(let error):
            printError("cannot fetch keys: \(error.reason)")
        }
        return nil
    }

    private func readToken() throws -> String {
        guard token == "-" else { return token }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while bytes.count <= 1 << 20 {
            let count = chunk.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
            if count <= 0 { break }
            bytes += chunk.prefix(count)
        }
        var text = String(decoding: bytes, as: UTF8.self)
        // `echo "$TOKEN" |` adds a newline; strip exactly that, nothing else.
        if text.hasSuffix("\n") { text.removeLast() }
        if text.hasSuffix("\r") { text.removeLast() }
        return text
    }
}

extension Result where Failure == Rejection {
    var rejection: Rejection? {
        if case .failure(let rejection) = self { return rejection }
        return nil
    }
}
