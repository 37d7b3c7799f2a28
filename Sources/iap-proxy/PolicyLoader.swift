import FoundationEssentials
import Glibc
import IAPAuth

/// Builds the policy: the config file's routes, or one catch-all route for `--allowlist`. It reads
/// every allowlist file a route names (`file:PATH`, relative to the config file), merges groups
/// from `groups:` and `[group NAME]` sections, and validates everything before returning — a
/// policy is installed whole or not at all.
enum PolicyLoader {
    struct Loaded {
        let policy: Policy
        /// Every file the policy was read from (the config file first): what the watcher watches.
        let files: [String]
        /// A short digest of all those files, for reload log lines.
        let checksum: String
        /// `route: entry` strings, to tell what a reload added and removed.
        let entries: Set<String>
    }

    static func load(configPath: String?, allowlistPath: String?, healthPath: String?, defaultHeaders: IdentityHeaders)
        -> Result<Loaded, ConfigurationError>
    {
        var config: ConfigFile?
        if let configPath {
            switch ConfigFile.load(configPath) {
            case .success(let loaded): config = loaded
            case .failure(let error): return .failure(error)
            }
        }
        return build(
            config: config, configPath: configPath, allowlistPath: allowlistPath, healthPath: healthPath,
            defaultHeaders: defaultHeaders)
    }

    static func build(
        config: ConfigFile?, configPath: String?, allowlistPath: String?, healthPath: String?,
        defaultHeaders: IdentityHeaders
    ) -> Result<Loaded, ConfigurationError> {
        var problems: [String] = []
        var files: [String] = configPath.map { [$0] } ?? []
        var groups: [String: [AccessList.Entry]] = [:]
        let baseDirectory = configPath.map { URL(fileURLWithPath: $0).deletingLastPathComponent().path } ?? ""

        func resolvePath(_ path: String) -> String {
            path.hasPrefix("/") || baseDirectory.isEmpty ? path : baseDirectory + "/" + path
        }
        /// Reads an allowlist file once; its groups join the shared set.
        var fileCache: [String: Allowlist] = [:]
        func allowlist(_ rawPath: String, from location: String) -> Allowlist? {
            let path = resolvePath(rawPath)
            if let cached = fileCache[path] { return cached }
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                problems.append("\(location): cannot read allowlist \(path)")
                return nil
            }
            if !files.contains(path) { files.append(path) }
            guard !text.isEmpty else {
                // An empty file is most likely being written: never load it as "nobody".
                problems.append("\(path): the file is empty (write at least a comment to deny everyone)")
                return nil
            }
            let (parsed, lineProblems) = Allowlist.parse(text)
            problems += lineProblems.map { "\(path):\($0.line): \($0.message)" }
            for (name, members) in parsed.groups {
                if groups[name] != nil { problems.append("\(path): group \(name.debugDescription) is defined twice") }
                groups[name] = members
            }
            fileCache[path] = parsed
            return parsed
        }

        // Groups defined in the config file.
        for (name, members) in config?.groups ?? [:] {
            let key = name.lowercased()
            let location = config?.locations["groups.\(name)"] ?? configPath ?? ""
            guard AccessListName.isValid(key) else {
                problems.append("\(location): group name \(name.debugDescription) is not valid")
                continue
            }
            groups[key] = members.compactMap { text in
                guard let entry = AccessList.parseEntry(Substring(text)), !entry.isGroup else {
                    problems.append("\(location): group \(name.debugDescription): \(text.debugDescription) is not a domain, email or *@domain")
                    return nil
                }
                return entry
            }
        }

        // The route specs: the config's, or the single allowlist route.
        var specs = config?.routes ?? []
        let catchAllFile = allowlistPath ?? config?.setting("allowlist")
        if let catchAllFile {
            if !specs.isEmpty && allowlistPath != nil {
                problems.append("give routes in the config file or --allowlist, not both")
            } else if specs.isEmpty || config?.setting("allowlist") != nil {
                var route = ConfigFile.RouteSpec(name: "allowlist", location: catchAllFile)
                route.pathPrefix = "/"
                route.allow = ["file:" + catchAllFile]
                specs.append(route)
            }
        }
        if specs.isEmpty {
            problems.append("no routes: set --allowlist FILE, or routes in the config file (a request that matches no route is denied)")
        }
        // The load balancer's health check (no JWT): answered here, never forwarded, exact path only.
        if let healthPath = healthPath ?? config?.setting("health_path") {
            if healthPath.hasPrefix("/") {
                var route = ConfigFile.RouteSpec(name: "health", location: "health_path")
                route.path = healthPath
                route.respond = "ok\n"
                specs.insert(route, at: 0)
            } else {
                problems.append("health-path must start with /")
            }
        }
        let headersLocation = config?.locations["headers"] ?? configPath ?? "headers"
        let configHeaders = config?.headers.map { identityHeaders($0, at: headersLocation, problems: &problems) } ?? nil

        // Entries per route (files read now, so their groups are known before resolving).
        var parsedRoutes: [(ConfigFile.RouteSpec, allow: [AccessList.Entry], deny: [AccessList.Entry])] = []
        for spec in specs {
            var allow: [AccessList.Entry] = []
            var deny: [AccessList.Entry] = []
            for text in spec.allow {
                if text.hasPrefix("file:") {
                    guard let file = allowlist(String(text.dropFirst(5)), from: spec.location) else { continue }
                    allow += file.allow
                    deny += file.deny
                    continue
                }
                let negated = text.hasPrefix("!")
                guard let entry = AccessList.parseEntry(Substring(negated ? String(text.dropFirst()) : text)) else {
                    problems.append("\(spec.location): \(spec.name): \(text.debugDescription) is not a domain, email, *@domain, group:NAME or file:PATH")
                    continue
                }
                if negated { deny.append(entry) } else { allow.append(entry) }
            }
            parsedRoutes.append((spec, allow, deny))
        }

        var routes: [Route] = []
        var entries: Set<String> = []
        for (spec, allow, deny) in parsedRoutes {
            let headers = spec.headers.map { identityHeaders($0, at: spec.location, problems: &problems) } ?? configHeaders ?? defaultHeaders
            if let path = spec.path, !path.hasPrefix("/") { problems.append("\(spec.location): \(spec.name): match.path must start with /") }
            if let prefix = spec.pathPrefix, !prefix.hasPrefix("/") {
                problems.append("\(spec.location): \(spec.name): match.path_prefix must start with /")
            }
            if spec.path != nil && spec.pathPrefix != nil {
                problems.append("\(spec.location): \(spec.name): give match.path or match.path_prefix, not both")
            }
            let noAuth = spec.authNone || spec.respond != nil
            let auth: Route.Auth
            if noAuth {
                if !spec.allow.isEmpty || !spec.requireAccessLevels.isEmpty {
                    problems.append("\(spec.location): \(spec.name): a route without authentication takes no allow list or access levels")
                }
                auth = .none
            } else {
                if allow.isEmpty && spec.allow.allSatisfy({ !$0.hasPrefix("file:") }) {
                    problems.append("\(spec.location): \(spec.name): an authenticated route needs an allow list (nothing is allowed by default)")
                }
                do throws(ConfigurationError) {
                    auth = .verified(try AccessList(allow: allow, deny: deny, groups: groups))
                } catch {
                    problems += error.problems.map { "\(spec.location): \(spec.name): \($0)" }
                    continue
                }
            }
            if case .verified(let list) = auth { entries.formUnion(list.entries.map { "\(spec.name): \($0)" }) }
            routes.append(
                Route(
                    name: spec.name, host: spec.host, pathPrefix: spec.path == nil ? (spec.pathPrefix ?? "/") : nil,
                    exactPath: spec.path, methods: spec.methods.map { Set($0.map { $0.uppercased() }) }, auth: auth,
                    requiredAccessLevels: spec.requireAccessLevels, identityHeaders: headers ?? defaultHeaders,
                    reportOnly: spec.reportOnly, allowEncodedSlashes: spec.allowEncodedSlashes, localResponse: spec.respond))
        }
        guard problems.isEmpty else { return .failure(ConfigurationError(problems)) }
        let digest = StreamingDigest(.sha256)
        for file in files {
            if let data = FileManager.default.contents(atPath: file) { data.withUnsafeBytes { digest.update($0) } }
        }
        let checksum = digest.finish().prefix(6).map { String(format: "%02x", $0) }.joined()
        return .success(Loaded(policy: Policy(routes: routes), files: files, checksum: checksum, entries: entries))
    }

    /// A preset name or a custom map, checked: names are tokens, templates use known placeholders.
    static func identityHeaders(_ spec: ConfigFile.HeadersSpec, at location: String, problems: inout [String]) -> IdentityHeaders? {
        switch spec {
        case .preset(let name):
            guard let preset = IdentityHeaders.presets[name] else {
                problems.append("\(location): unknown headers preset \(name.debugDescription); choose \(IdentityHeaders.presets.keys.sorted().joined(separator: ", ")) or a map")
                return nil
            }
            return preset
        case .custom(let pairs):
            var headers: [IdentityHeaders.Header] = []
            for (name, template) in pairs {
                if let problem = IdentityHeaders.problem(name: name, template: template) {
                    problems.append("\(location): header \(name.debugDescription): \(problem)")
                } else {
                    headers.append(IdentityHeaders.Header(name: name, template: template))
                }
            }
            return headers.isEmpty ? nil : IdentityHeaders(headers)
        }
    }
}

/// Group names as `[group NAME]` and `group:NAME` accept them.
enum AccessListName {
    static func isValid(_ name: String) -> Bool {
        guard case .group = AccessList.parseEntry(Substring("group:" + name)) else { return false }
        return true
    }
}
