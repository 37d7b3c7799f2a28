import ArgumentParser
import FoundationEssentials
import Glibc
import IAPAuth
import ProxyServer

/// `iap-proxy serve`: the sidecar.
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Proxy to the app, admitting only requests with a valid IAP assertion from an allowlisted user.",
        discussion: """
            Example:
              iap-proxy serve --upstream http://127.0.0.1:8888 \\
                --audience /projects/123456789/global/backendServices/987654321 \\
                --allowlist /etc/iap-proxy/allowlist.txt --preset jupyterhub
            Signals: SIGTERM/SIGINT drain and exit 0; SIGHUP re-reads the allowlist (and a --jwks-file).
            """
    )

    @OptionGroup var options: ServeOptions

    func run() throws {
        // Before any thread starts (key refresher, file watcher, loops): threads inherit the mask,
        // so only the main thread's sigwait ever sees these signals.
        Server.blockHandledSignals()
        let resolved: ServeOptions.Resolved
        switch options.resolve() {
        case .success(let value): resolved = value
        case .failure(let error): throw configurationError(error.problems.joined(separator: "\nerror: "))
        }
        EventLog.bootstrap(format: resolved.config.logFormat, level: resolved.logLevel)
        let keys = KeyStore()
        let metrics = Metrics()
        var refresher: KeyRefresher?
        switch resolved.keySource {
        case .file(let path, let set):
            keys.publish(set, at: wallClockSeconds())
            EventLog.event("keys-loaded", [("source", path), ("kids", set.keyIDs.joined(separator: ","))])
            for problem in set.problems { EventLog.event(level: .warning, "key-skipped", [("source", path), ("problem", problem)]) }
        case .url(let url, let cacheFile):
            var settings = KeyRefresher.Settings(fetch: KeyFetcher.Settings(url: url))
            settings.cacheFile = cacheFile
            refresher = try KeyRefresher(settings, store: keys) { event in
                switch event {
                case .fetched: metrics.keyFetched(success: true)
                case .fetchFailed: metrics.keyFetched(success: false)
                default: break
                }
                Self.logKeyEvent(event)
            }
        }
        let shared = SharedState(config: resolved.config, keys: keys, refresher: refresher, metrics: metrics)
        shared.replacePolicy(resolved.policy.policy)
        metrics.policyLoaded(resolved.policy.policy, at: wallClockSeconds(), reload: false)
        EventLog.event("policy-loaded", [
            ("files", resolved.policy.files.joined(separator: ",")), ("routes", "\(resolved.policy.policy.routes.count)"),
            ("entries", "\(resolved.policy.policy.entryCount)"), ("checksum", resolved.policy.checksum),
        ])
        let server: Server
        do {
            server = try Server(shared: shared)
        } catch {
            throw configurationError("cannot listen: \(error)")
        }
        refresher?.start()
        let reloader = PolicyReloader(resolved, shared: shared)
        let watcher = FileWatcher(files: resolved.policy.files) { trigger in reloader.reload(trigger: trigger) }
        watcher.start()
        server.run {
            watcher.requestReload()  // the watcher never reads a file still being written
            Self.reloadKeyFile(resolved, shared: shared)
        }
        watcher.stop()
        refresher?.stop()
    }

    /// SIGHUP also re-reads a `--jwks-file` (a ConfigMap-mounted key set).
    static func reloadKeyFile(_ resolved: ServeOptions.Resolved, shared: SharedState) {
        guard case .file(let path, _) = resolved.keySource else { return }
        do {
            let set = try KeyFile.load(path)
            shared.keys.publish(set, at: wallClockSeconds())
            EventLog.event("keys-reloaded", [("source", path), ("kids", set.keyIDs.joined(separator: ","))])
        } catch {
            EventLog.event(level: .warning, "keys-reload-failed", [("source", path), ("problem", error.reason)])
        }
    }

    static func logKeyEvent(_ event: KeyRefresher.Event) {
        switch event {
        case .loadedCache(let path, let kids):
            EventLog.event("keys-cache-loaded", [("path", path), ("kids", kids.joined(separator: ","))])
        case .cacheUnusable(let path, let reason):
            EventLog.event(level: .warning, "keys-cache-unusable", [("path", path), ("reason", reason)])
        case .fetched(let kids, let changed, let freshFor, let problems):
            EventLog.event("keys-fetched", [
                ("kids", kids.joined(separator: ",")), ("changed", "\(changed)"), ("fresh_for_s", "\(Int(freshFor))"),
                ("skipped", problems.joined(separator: "; ")),
            ])
        case .fetchFailed(let reason, let failures, let retryIn):
            EventLog.event(level: .warning, "keys-fetch-failed", [
                ("reason", reason), ("consecutive_failures", "\(failures)"), ("retry_in_s", String(format: "%.1f", retryIn)),
            ])
        case .cacheWriteFailed(let path):
            EventLog.event(level: .warning, "keys-cache-write-failed", [("path", path)])
        }
    }
}

/// `iap-proxy check-config`: the same flags as `serve`; every problem at once; exit 0 or 2.
struct CheckConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Validate serve's flags and files (allowlist, key file) and report every problem; exit 0 or 2."
    )

    @OptionGroup var options: ServeOptions

    func run() throws {
        switch options.resolve() {
        case .success(let resolved):
            print("configuration ok")
            print("  listen \(resolved.config.listen), upstream \(resolved.config.upstream), workers \(resolved.config.workers)")
            print("  audiences \(resolved.config.verifier.audiences.sorted().joined(separator: ", "))")
            print("  policy from \(resolved.policy.files.joined(separator: ", ")): \(resolved.policy.policy.routes.count) routes, \(resolved.policy.policy.entryCount) entries")
            switch resolved.keySource {
            case .file(let path, let set): print("  keys \(path): \(set.keyIDs.joined(separator: ", "))")
            case .url(let url, _): print("  keys \(url) (fetched at start)")
            }
        case .failure(let error):
            for problem in error.problems { printError("error: \(problem)") }
            throw ExitCode(2)
        }
    }
}

/// `iap-proxy echo`: the test upstream.
struct EchoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "echo",
        abstract: "A tiny upstream answering each request with its line, headers and body length as JSON; echoes WebSocket frames."
    )

    @Option(help: "Address to serve on, HOST:PORT.") var listen = "127.0.0.1:8081"

    func run() throws {
        EventLog.bootstrap(format: .json, level: .info)
        let server: EchoServer
        do {
            server = try EchoServer(listen: try SocketAddress.resolve(listen))
        } catch {
            throw configurationError("echo: \(error)")
        }
        EventLog.event("echo-serving", [("listen", "\(listen.split(separator: ":").dropLast().joined(separator: ":")):\(server.port)")])
        server.run()
    }
}

/// Re-reads the policy from where it came from, installs it only if it is valid as a whole, and
/// logs what changed; a broken or missing file keeps the last good policy (and is logged with its
/// file and line). Runs on the watcher thread or the signal thread, one at a time.
final class PolicyReloader: Sendable {
    private let resolved: ServeOptions.Resolved
    private let shared: SharedState
    private let lastEntries: Locked<Set<String>>

    init(_ resolved: ServeOptions.Resolved, shared: SharedState) {
        self.resolved = resolved
        self.shared = shared
        lastEntries = Locked(resolved.policy.entries)
    }

    /// The files to watch after this reload, or nil when it failed (keep watching the same ones).
    func reload(trigger: String) -> [String]? {
        lastEntries.withLock { last in
            switch PolicyLoader.load(
                configPath: resolved.configPath, allowlistPath: resolved.allowlistPath, healthPath: resolved.healthPath,
                defaultHeaders: resolved.config.identityHeaders)
            {
            case .success(let loaded):
                shared.replacePolicy(loaded.policy)
                shared.metrics.policyLoaded(loaded.policy, at: wallClockSeconds(), reload: true)
                EventLog.event("policy-reloaded", [
                    ("trigger", trigger), ("routes", "\(loaded.policy.routes.count)"),
                    ("entries", "\(loaded.policy.entryCount)"), ("added", "\(loaded.entries.subtracting(last).count)"),
                    ("removed", "\(last.subtracting(loaded.entries).count)"), ("checksum", loaded.checksum),
                ])
                last = loaded.entries
                return loaded.files
            case .failure(let error):
                shared.metrics.policyReloadFailed()
                EventLog.event(level: .warning, "policy-reload-failed", [
                    ("trigger", trigger), ("problems", error.problems.joined(separator: "; ")),
                    ("kept", "the previous policy"),
                ])
                return nil
            }
        }
    }
}

/// `iap-proxy probe`: exit 0 when a health endpoint answers 200 (for container HEALTHCHECKs
/// and exec probes, where no curl is installed).
struct ProbeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "probe",
        abstract: "Exit 0 if GET http://ADDRESS/PATH answers 200 within the timeout, 1 otherwise."
    )

    @Option(help: "HOST:PORT of the admin listener.") var address = "127.0.0.1:9090"
    @Option(help: "Path to ask.") var path = "/healthz"
    @Option(help: "Timeout in milliseconds.") var timeout = 2000

    func run() throws {
        let target: SocketAddress
        do {
            target = try SocketAddress.resolve(address)
        } catch {
            throw configurationError("probe: \(error)")
        }
        guard Probe.get(target, path: path, timeoutMilliseconds: timeout) else { throw ExitCode(1) }
    }
}
