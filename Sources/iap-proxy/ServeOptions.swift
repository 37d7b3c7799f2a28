import ArgumentParser
import FoundationEssentials
import Glibc
import HTTP1
import IAPAuth
import Logging
import ProxyServer

/// The flags `serve` and `check-config` share. Every flag can also come from the environment:
/// `--jwks-url` from `IAP_PROXY_JWKS_URL`, and so on (repeatable flags take a comma-separated
/// list), and from the config file. A flag wins over the environment, which wins over the file.
struct ServeOptions: ParsableArguments {
    @Option(help: "YAML config file: settings and routes (docs/CONFIG.md).") var config: String?
    @Option(help: "Address to serve on, HOST:PORT or [IPv6]:PORT (default 0.0.0.0:8080).") var listen: String?
    @Option(help: "The app: http://HOST:PORT.") var upstream: String?
    @Option(help: "Accepted aud (repeatable).") var audience: [String] = []
    @Option(help: "Key set URL (default Google's IAP keys).") var jwksURL: String?
    @Option(help: "Key set file (JWK set or PEM map); no network needed.") var jwksFile: String?
    @Option(help: "Where to keep the last good fetched key set across restarts.") var jwksCache: String?
    @Option(help: "Allowlist file: domains (matched against hd) and emails, one a line.") var allowlist: String?
    @Option(help: "Admin address for /healthz and /readyz (default 0.0.0.0:9090; 'off' disables).")
    var adminListen: String?
    @Option(help: "Identity headers for the app: oauth2-proxy (default), jupyterhub, grafana, kubeflow.")
    var preset: String?
    @Option(help: "Event-loop threads (default: the CPUs this process may use, cgroup-aware).") var workers: Int?
    @Option(help: "Clock skew tolerated on exp/iat, seconds (default 30).") var leeway: Int64?
    @Option(help: "X-Forwarded-Proto: auto (keep the load balancer's), http or https.") var forwardedProto: String?
    @Option(help: "Add Via: 1.1 iap-proxy (true/false).") var via: String?
    @Option(help: "Pass the verified x-goog-iap-jwt-assertion on to the app (true, the default, or false).")
    var forwardAssertion: String?
    @Option(help: "Request head timeout, e.g. 15s.") var headTimeout: String?
    @Option(help: "Idle keep-alive timeout, e.g. 60s.") var idleTimeout: String?
    @Option(help: "Longest stall of a client sending a body or reading a response, e.g. 60s.") var clientTimeout: String?
    @Option(help: "Upstream connect timeout, e.g. 5s.") var upstreamConnectTimeout: String?
    @Option(help: "Upstream response timeout (head, and between body bytes), e.g. 60s.") var upstreamTimeout: String?
    @Option(help: "Pooled upstream connections idle longer than this are closed, e.g. 30s.") var upstreamIdleTimeout: String?
    @Option(help: "WebSocket tunnel idle timeout, e.g. 1h.") var tunnelIdleTimeout: String?
    @Option(help: "Drain timeout on SIGTERM, e.g. 30s.") var drainTimeout: String?
    @Option(help: "How long a token with an unknown kid waits for a key refetch, e.g. 5s.") var keyWaitTimeout: String?
    @Option(help: "Maximum client connections (default 10000).") var maxConnections: Int?
    @Option(help: "Maximum request head bytes (default 32768): 431 beyond.") var maxHeaderBytes: Int?
    @Option(help: "Maximum request-target bytes (default 8192): 414 beyond.") var maxURIBytes: Int?
    @Option(help: "Bytes queued toward a slow peer before reading pauses (default 262144).") var writeHighWater: Int?
    @Option(help: "Idle upstream connections kept per worker (default 1024).") var upstreamPoolSize: Int?
    @Option(help: "The access log on stdout: on (default) or off.") var accessLog: String?
    @Option(help: "Log lines as json (default) or text (key=value).") var logFormat: String?
    @Option(help: "Lowest level of events logged on stderr: trace, debug, info (default), notice, warning, error.")
    var logLevel: String?
    @Option(help: "Emails in logs: plain (default) or hash (a SHA-256 digest, for privacy-sensitive sites).")
    var logEmails: String?
    @Option(help: "Path answering the caller's verified identity (default /.iap-proxy/whoami; 'off' disables).")
    var whoamiPath: String?
    @Option(help: "Path answered 200 by iap-proxy without authentication, for the load balancer's health check.")
    var healthPath: String?

    /// What `serve` runs with, or every problem found.
    struct Resolved {
        var config: ServerConfig
        var keySource: KeySource
        var logLevel: Logger.Level
        /// Where the policy comes from: reloaded from the same places.
        var configPath: String?
        var allowlistPath: String?
        var healthPath: String?
        var policy: PolicyLoader.Loaded
    }

    enum KeySource {
        case file(String, KeySet)
        case url(String, cacheFile: String?)
    }

    func resolve(environment: [String: String] = ProcessInfo.processInfo.environment) -> Result<Resolved, ConfigurationError> {
        var problems: [String] = []
        let configPath = config ?? environment["IAP_PROXY_CONFIG"].flatMap { $0.isEmpty ? nil : $0 }
        var file: ConfigFile?
        if let configPath {
            let (loaded, shapeProblems) = ConfigFile.read(configPath)
            file = loaded
            problems += shapeProblems
        }
        func value(_ flag: String?, _ name: String, _ fromFile: String? = nil) -> String? {
            flag ?? environment["IAP_PROXY_" + name].flatMap { $0.isEmpty ? nil : $0 } ?? fromFile
        }
        /// Where a setting's value came from, for messages: `--idle-timeout`, `IAP_PROXY_IDLE_TIMEOUT`
        /// or `config.yaml:7:9: timeouts.idle`.
        func origin(_ flagGiven: Bool, _ name: String, _ fileKey: String) -> String {
            let flagName = "--" + name.lowercased().replacingOccurrences(of: "_", with: "-")
            if flagGiven { return flagName }
            if environment["IAP_PROXY_" + name]?.isEmpty == false { return "IAP_PROXY_" + name }
            return file?.origin(fileKey) ?? flagName
        }
        func list(_ flags: [String], _ name: String, _ fromFile: [String]? = nil) -> [String] {
            if !flags.isEmpty { return flags }
            let fromEnvironment = (environment["IAP_PROXY_" + name] ?? "").split(separator: ",").map {
                String($0).trimmingCharacters(in: .whitespaces)
            }.filter { !$0.isEmpty }
            return fromEnvironment.isEmpty ? fromFile ?? [] : fromEnvironment
        }
        func number<T: FixedWidthInteger>(
            _ flag: T?, _ name: String, _ fallback: T, _ range: ClosedRange<T>, _ fileKey: String
        ) -> T {
            let text = flag.map { "\($0)" } ?? environment["IAP_PROXY_" + name] ?? file?.setting(fileKey)
            guard let text else { return fallback }
            guard let number = T(text), range.contains(number) else {
                problems.append("\(origin(flag != nil, name, fileKey)): \(text.debugDescription) must be a number in \(range)")
                return fallback
            }
            return number
        }
        func address(_ text: String, _ what: String) -> SocketAddress? {
            do {
                return try SocketAddress.resolve(text)
            } catch {
                problems.append("\(what): \(error)")
                return nil
            }
        }
        func duration(_ flag: String?, _ name: String, _ fallback: Int64, _ fileKey: String) -> Int64 {
            guard let text = value(flag, name, file?.setting(fileKey)) else { return fallback }
            guard let milliseconds = Duration.milliseconds(text) else {
                problems.append("\(origin(flag != nil, name, fileKey)): \(text.debugDescription) is not a duration like 500ms, 15s, 5m or 1h")
                return fallback
            }
            return milliseconds
        }
        /// A setting with a fixed set of values.
        func choice(_ flag: String?, _ name: String, _ fileKey: String, _ fallback: String, _ allowed: [String]) -> String {
            let text = value(flag, name, file?.setting(fileKey)) ?? fallback
            if !allowed.contains(text) {
                let options = allowed.dropLast().joined(separator: ", ") + " or " + allowed.last!
                problems.append("\(origin(flag != nil, name, fileKey)): \(text.debugDescription) must be \(options)")
            }
            return text
        }

        let listenAddress = address(
            value(listen, "LISTEN", file?.setting("listen")) ?? "0.0.0.0:8080", origin(listen != nil, "LISTEN", "listen"))
        var upstreamAddress: SocketAddress?
        if let upstream = value(upstream, "UPSTREAM", file?.setting("upstream")) {
            switch Self.upstreamHostPort(upstream) {
            case .success(let hostPort): upstreamAddress = address(hostPort, origin(self.upstream != nil, "UPSTREAM", "upstream"))
            case .failure(let problem): problems.append("\(origin(self.upstream != nil, "UPSTREAM", "upstream")): \(problem)")
            }
        } else {
            problems.append("no upstream: set --upstream http://HOST:PORT (IAP_PROXY_UPSTREAM)")
        }
        let adminText = value(adminListen, "ADMIN_LISTEN", file?.setting("admin_listen")) ?? "0.0.0.0:9090"
        let adminAddress = adminText == "off" ? nil : address(adminText, origin(adminListen != nil, "ADMIN_LISTEN", "admin_listen"))

        var verifier: VerifierConfig?
        do throws(ConfigurationError) {
            let leewayText = value(leeway.map { "\($0)" }, "LEEWAY", file?.setting("leeway")) ?? "30"
            guard let leewaySeconds = Duration.milliseconds(leewayText).map({ $0 / 1000 }) ?? (leewayText == "0" ? 0 : nil) else {
                throw ConfigurationError(["\(origin(leeway != nil, "LEEWAY", "leeway")): \(leewayText.debugDescription) is not a duration like 30s"])
            }
            verifier = try VerifierConfig(audiences: list(audience, "AUDIENCE", file?.audiences), leeway: leewaySeconds)
        } catch {
            problems += error.problems.map { $0.replacingOccurrences(of: "(--audience)", with: "(--audience, IAP_PROXY_AUDIENCE)") }
        }

        let presetName = value(preset, "PRESET") ?? IdentityHeaders.defaultPreset
        let identityHeaders = IdentityHeaders.presets[presetName]
        if identityHeaders == nil {
            problems.append("unknown preset \(presetName.debugDescription); choose \(IdentityHeaders.presets.keys.sorted().joined(separator: ", "))")
        }

        let forwarded = ServerConfig.ForwardedProto(
            rawValue: choice(forwardedProto, "FORWARDED_PROTO", "forwarded_proto", "auto", ["auto", "http", "https"]))
        let viaText = choice(via, "VIA", "via", "false", ["true", "false"])
        let forwardAssertionText = choice(forwardAssertion, "FORWARD_ASSERTION", "forward_assertion", "true", ["true", "false"])
        let accessLogText = choice(accessLog, "ACCESS_LOG", "access_log", "on", ["on", "off"])
        let format = LogFormat(rawValue: choice(logFormat, "LOG_FORMAT", "log_format", "json", ["json", "text"]))
        let level = Logger.Level(rawValue: choice(
            logLevel, "LOG_LEVEL", "log_level", "info", ["trace", "debug", "info", "notice", "warning", "error", "critical"]))
        let emailsText = choice(logEmails, "LOG_EMAILS", "log_emails", "plain", ["plain", "hash"])
        let whoami = value(whoamiPath, "WHOAMI_PATH", file?.setting("whoami_path")) ?? "/.iap-proxy/whoami"
        if whoami != "off" && !whoami.hasPrefix("/") {
            problems.append("\(origin(whoamiPath != nil, "WHOAMI_PATH", "whoami_path")): must start with / (or be off)")
        }

        // Keys: a file (read now) or a URL (fetched in the background).
        var keySource: KeySource?
        // The key source is chosen as a whole: a flag or variable naming one replaces the file's.
        let overridden = value(jwksFile, "JWKS_FILE") != nil || value(jwksURL, "JWKS_URL") != nil
        let keyFile = overridden ? value(jwksFile, "JWKS_FILE") : file?.setting("keys.file")
        let url = overridden ? value(jwksURL, "JWKS_URL") : file?.setting("keys.url")
        if let keyFile, url != nil {
            problems.append("give --jwks-file or --jwks-url, not both (\(keyFile))")
        } else if let keyFile {
            do {
                keySource = .file(keyFile, try KeyFile.load(keyFile))
            } catch {
                problems.append(error.reason)
            }
        } else {
            let url = url ?? KeyFetcher.googleIAPKeysURL
            if let problem = KeyFetcher.problem(withURL: url) { problems.append(problem) }
            keySource = .url(url, cacheFile: value(jwksCache, "JWKS_CACHE", file?.setting("keys.cache")))
        }

        // A policy is required: admitting every verified Google account is never the default.
        var policy: PolicyLoader.Loaded?
        let allowlistPath = value(self.allowlist, "ALLOWLIST")
        // Checked even when other settings are wrong (an unknown preset falls back to the
        // default here), so check-config reports every problem in one run.
        let policyHeaders = identityHeaders ?? IdentityHeaders.presets[IdentityHeaders.defaultPreset]!
        do {
            switch PolicyLoader.build(
                config: file, configPath: configPath, allowlistPath: allowlistPath,
                healthPath: value(healthPath, "HEALTH_PATH"), defaultHeaders: policyHeaders)
            {
            case .success(let loaded): policy = loaded
            case .failure(let error): problems += error.problems
            }
        }

        let workerCount = number(workers, "WORKERS", System.coreCount, 1...256, "workers")
        var timeouts = ServerConfig.Timeouts()
        timeouts.head = duration(headTimeout, "HEAD_TIMEOUT", timeouts.head, "timeouts.head")
        timeouts.idle = duration(idleTimeout, "IDLE_TIMEOUT", timeouts.idle, "timeouts.idle")
        timeouts.client = duration(clientTimeout, "CLIENT_TIMEOUT", timeouts.client, "timeouts.client")
        timeouts.upstreamConnect = duration(
            upstreamConnectTimeout, "UPSTREAM_CONNECT_TIMEOUT", timeouts.upstreamConnect, "timeouts.upstream_connect")
        timeouts.upstreamResponse = duration(
            upstreamTimeout, "UPSTREAM_TIMEOUT", timeouts.upstreamResponse, "timeouts.upstream")
        timeouts.upstreamIdle = duration(
            upstreamIdleTimeout, "UPSTREAM_IDLE_TIMEOUT", timeouts.upstreamIdle, "timeouts.upstream_idle")
        timeouts.tunnelIdle = duration(tunnelIdleTimeout, "TUNNEL_IDLE_TIMEOUT", timeouts.tunnelIdle, "timeouts.tunnel_idle")
        timeouts.drain = duration(drainTimeout, "DRAIN_TIMEOUT", timeouts.drain, "timeouts.drain")
        timeouts.keyWait = duration(keyWaitTimeout, "KEY_WAIT_TIMEOUT", timeouts.keyWait, "timeouts.key_wait")
        var limits = ServerConfig.Limits()
        limits.maximumConnections = number(
            maxConnections, "MAX_CONNECTIONS", limits.maximumConnections, 1...1_000_000, "limits.max_connections")
        limits.http.maximumHeadBytes = number(
            maxHeaderBytes, "MAX_HEADER_BYTES", limits.http.maximumHeadBytes, 1024...1 << 20, "limits.max_header_bytes")
        limits.http.maximumTargetBytes = number(
            maxURIBytes, "MAX_URI_BYTES", limits.http.maximumTargetBytes, 256...1 << 20, "limits.max_uri_bytes")
        limits.writeHighWater = number(
            writeHighWater, "WRITE_HIGH_WATER", limits.writeHighWater, 16 * 1024...64 << 20, "limits.write_high_water")
        limits.upstreamPoolSize = number(
            upstreamPoolSize, "UPSTREAM_POOL_SIZE", limits.upstreamPoolSize, 0...65536, "limits.upstream_pool_size")

        guard problems.isEmpty, let listenAddress, let upstreamAddress, let verifier, let identityHeaders,
            let forwarded, let keySource, let policy, let format, let level
        else { return .failure(ConfigurationError(problems)) }
        var config = ServerConfig(
            listen: listenAddress, upstream: upstreamAddress, admin: adminAddress, workers: workerCount,
            verifier: verifier, identityHeaders: identityHeaders)
        config.timeouts = timeouts
        config.limits = limits
        config.forwardedProto = forwarded
        config.addVia = viaText == "true"
        config.forwardAssertion = forwardAssertionText == "true"
        config.accessLog = accessLogText == "on"
        config.logFormat = format
        config.hashEmails = emailsText == "hash"
        config.whoamiPath = whoami == "off" ? nil : whoami
        return .success(
            Resolved(
                config: config, keySource: keySource, logLevel: level, configPath: configPath,
                allowlistPath: allowlistPath, healthPath: value(healthPath, "HEALTH_PATH"), policy: policy))
    }

    /// `http://HOST:PORT` (an optional trailing `/`) as HOST:PORT.
    static func upstreamHostPort(_ url: String) -> Result<String, ConfigurationError> {
        guard url.hasPrefix("http://") else {
            return .failure(ConfigurationError(["upstream \(url.debugDescription) must be http://HOST:PORT (the app beside the sidecar)"]))
        }
        var rest = url.dropFirst(7)
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        guard !rest.isEmpty, !rest.contains("/"), !rest.contains("@"), rest.contains(":") else {
            return .failure(ConfigurationError(["upstream \(url.debugDescription) must be http://HOST:PORT, with no path"]))
        }
        return .success(String(rest))
    }
}

/// Durations written as 500ms, 15s, 5m, 1h (or plain seconds).
enum Duration {
    static func milliseconds(_ text: String) -> Int64? {
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            guard let value = Int64(text.dropLast(suffix.count)), value > 0 else { return nil }
            return value * scale
        }
        return Int64(text).flatMap { $0 > 0 ? $0 * 1000 : nil }
    }
}
