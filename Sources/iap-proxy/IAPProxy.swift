import ArgumentParser
import FoundationEssentials
import Glibc

/// The `iap-proxy` command line. Exit codes: 0 success, 1 a rejected token (or a failed run),
/// 2 usage or configuration errors (argument-parser's own 64 is mapped to 2).
@main
struct IAPProxy: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "iap-proxy",
        abstract: "An identity-aware reverse proxy that verifies Google IAP assertions.",
        subcommands: [
            ServeCommand.self, CheckConfigCommand.self, VerifyCommand.self, KeygenCommand.self, MintCommand.self,
            EchoCommand.self, ProbeCommand.self,
        ]
    )

    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            exitMapped(error)
        }
    }

    static func exitMapped(_ error: Error) -> Never {
        if let failure = error as? ConfigurationFailure {
            printError("error: \(failure.message)")
            Glibc.exit(2)
        }
        let code = exitCode(for: error)
        let message = fullMessage(for: error)
        if !message.isEmpty {
            // Help and version requests exit 0: those go to stdout, failures to stderr.
            if code == .success { print(message) } else { printError(message) }
        }
        Glibc.exit(code == .validationFailure ? 2 : code.rawValue)
    }
}

/// A configuration or input problem found while running: printed as `error: …`, exit 2.
struct ConfigurationFailure: Error {
    let message: String
}

func configurationError(_ message: String) -> ConfigurationFailure { ConfigurationFailure(message: message) }

func printError(_ message: String) {
    let line = Array((message + "\n").utf8)
    var offset = 0
    while offset < line.count {
        let written = line[offset...].withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
        if written <= 0 { return }
        offset += written
    }
}
