import FoundationEssentials
import Glibc
import IAPAuth
import Yams

/// The YAML config file (`--config`): serve's settings plus the route table (docs/CONFIG.md).
/// Every problem is collected with its `file:line:column`, so one run reports them all.
struct ConfigFile {
    /// Single-value settings by dotted key: `listen`, `keys.url`, `timeouts.head`, ...
    var settings: [String: String] = [:]
    var audiences: [String]?
    var headers: HeadersSpec?
    var groups: [String: [String]] = [:]
    var routes: [RouteSpec] = []
    /// `file:line:column` of each setting read, by its dotted key (`timeouts.head`, `groups.ops`).
    var locations: [String: String] = [:]
    let path: String

    func setting(_ key: String) -> String? { settings[key] }

    enum HeadersSpec: Equatable {
        case preset(String)
        case custom([(name: String, template: String)])

        static func == (lhs: HeadersSpec, rhs: HeadersSpec) -> Bool {
            switch (lhs, rhs) {
            case (.preset(let a), .preset(let b)): return a == b
            case (.custom(let a), .custom(let b)): return a.map { "\($0.name):\($0.template)" } == b.map { "\($0.name):\($0.template)" }
            default: return false
            }
        }
    }

    struct RouteSpec {
        var name: String
        var location: String
        var host: String?
        var pathPrefix: String?
        var path: String?
        var methods: [String]?
        var authNone = false
        var allow: [String] = []
        var requireAccessLevels: [String] = []
        var headers: HeadersSpec?
        var reportOnly = false
        var allowEncodedSlashes = false
        var respond: String?
    }

    /// Top-level keys holding one value.
    static let scalarKeys = [
        "listen", "admin_listen", "upstream", "leeway", "workers", "forwarded_proto", "via", "forward_assertion",
        "access_log", "log_format", "log_level", "log_emails", "whoami_path", "health_path", "allowlist",
    ]
    static let timeoutKeys = [
        "head", "idle", "client", "upstream_connect", "upstream", "upstream_idle", "tunnel_idle", "drain", "key_wait",
    ]
    static let limitKeys = [
        "max_connections", "max_header_bytes", "max_uri_bytes", "write_high_water", "upstream_pool_size",
    ]

    /// Reads and checks the file's shape (values are checked where they are used).
    static func load(_ path: String) -> Result<ConfigFile, ConfigurationError> {
        let (config, problems) = read(path)
        guard let config, problems.isEmpty else { return .failure(ConfigurationError(problems)) }
        return .success(config)
    }

    /// The file as far as it could be read, and every problem with its shape; nil only when it is
    /// unreadable or not YAML (so `check-config` can still check the values it did read).
    static func read(_ path: String) -> (ConfigFile?, [String]) {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            return (nil, ["cannot read config file \(path)"])
        }
        guard !text.isEmpty else { return (nil, ["\(path): the file is empty"]) }
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: text) else { return (nil, ["\(path): the file holds no YAML document"]) }
            root = node
        } catch {
            return (nil, ["\(path): not valid YAML: \(error)"])
        }
        let reader = Reader(file: path)
        var config = ConfigFile(path: path)
        reader.mapping(
            root, "the top level",
            keys: scalarKeys + ["audiences", "keys", "timeouts", "limits", "headers", "groups", "routes"]
        ) { key, value in
            func scalars(_ keys: [String]) {
                reader.mapping(value, key, keys: keys) { name, node in
                    config.settings["\(key).\(name)"] = reader.scalar(node, "\(key).\(name)")
                }
            }
            switch key {
            case _ where scalarKeys.contains(key): config.settings[key] = reader.scalar(value, key)
            case "audiences": config.audiences = reader.strings(value, key)
            case "keys": scalars(["url", "file", "cache"])
            case "timeouts": scalars(timeoutKeys)
            case "limits": scalars(limitKeys)
            case "headers": config.headers = reader.headers(value, key)
            case "groups":
                reader.mapping(value, key, keys: nil) { name, node in config.groups[name] = reader.strings(node, "groups.\(name)") }
            case "routes":
                guard case .sequence(let sequence) = value else { return reader.problem(value, "routes must be a list") }
                for (index, item) in sequence.enumerated() {
                    if let route = reader.route(item, index: index) { config.routes.append(route) }
                }
            default: break
            }
        }
        config.locations = reader.locations
        return (config, reader.problems)
    }

    /// Where a setting was written, as `file:line:column: key`, for messages about its value.
    func origin(_ key: String) -> String? { locations[key].map { "\($0): \(key)" } }

    /// A typed walk over Yams nodes that records problems instead of stopping at the first.
    /// A class so nested closures can record problems while a walk is under way.
    final class Reader {
        let file: String
        var problems: [String] = []
        var locations: [String: String] = [:]

        init(file: String) { self.file = file }

        func location(_ node: Node) -> String {
            guard let mark = node.mark else { return file }
            return "\(file):\(mark.line):\(mark.column)"
        }

        func problem(_ node: Node, _ message: String) { problems.append("\(location(node)): \(message)") }

        func mapping(_ node: Node, _ what: String, keys: [String]?, _ body: (String, Node) -> Void) {
            guard case .mapping(let mapping) = node else { return problem(node, "\(what) must be a mapping") }
            for (key, value) in mapping {
                guard let name = key.string else {
                    problem(key, "keys of \(what) must be strings")
                    continue
                }
                if let keys, !keys.contains(name) {
                    problem(key, "unknown key \(name.debugDescription) in \(what) (expected one of: \(keys.joined(separator: ", ")))")
                    continue
                }
                body(name, value)
            }
        }

        func scalar(_ node: Node, _ what: String) -> String? {
            locations[what] = location(node)
            guard case .scalar(let scalar) = node else {
                problem(node, "\(what) must be a single value")
                return nil
            }
            return scalar.string
        }

        func strings(_ node: Node, _ what: String) -> [String]? {
            locations[what] = location(node)
            guard case .sequence(let sequence) = node else {
                problem(node, "\(what) must be a list")
                return nil
            }
            return sequence.compactMap { scalar($0, "an item of \(what)") }
        }

        func bool(_ node: Node, _ what: String) -> Bool {
            switch scalar(node, what) {
            case "true": return true
            case "false": return false
            default:
                problem(node, "\(what) must be true or false")
                return false
            }
        }

        /// A preset name, or a map of header name to template.
        func headers(_ node: Node, _ what: String) -> HeadersSpec? {
            locations[what] = location(node)
            if case .scalar = node { return scalar(node, what).map(HeadersSpec.preset) }
            var custom: [(String, String)] = []
            mapping(node, what, keys: nil) { name, value in
                if let template = scalar(value, "\(what).\(name)") { custom.append((name, template)) }
            }
            return .custom(custom)
        }

        func route(_ node: Node, index: Int) -> RouteSpec? {
            var route = RouteSpec(name: "routes[\(index)]", location: location(node))
            var sawMatch = false
            mapping(node, "routes[\(index)]", keys: [
                "name", "match", "auth", "allow", "require_access_levels", "headers", "report_only",
                "allow_encoded_slashes", "respond",
            ]) { key, value in
                switch key {
                case "name": route.name = scalar(value, "name") ?? route.name
                case "match":
                    sawMatch = true
                    mapping(value, "routes[\(index)].match", keys: ["host", "path_prefix", "path", "methods"]) { name, node in
                        switch name {
                        case "host": route.host = scalar(node, "match.host")
                        case "path_prefix": route.pathPrefix = scalar(node, "match.path_prefix")
                        case "path": route.path = scalar(node, "match.path")
                        default: route.methods = strings(node, "match.methods")
                        }
                    }
                case "auth":
                    switch scalar(value, "auth") {
                    case "none": route.authNone = true
                    case "iap": route.authNone = false
                    default: problem(value, "auth must be iap (the default) or none")
                    }
                case "allow": route.allow = strings(value, "allow") ?? []
                case "require_access_levels": route.requireAccessLevels = strings(value, "require_access_levels") ?? []
                case "headers": route.headers = headers(value, "headers")
                case "report_only": route.reportOnly = bool(value, "report_only")
                case "allow_encoded_slashes": route.allowEncodedSlashes = bool(value, "allow_encoded_slashes")
                default: route.respond = scalar(value, "respond")
                }
            }
            if !sawMatch { problem(node, "routes[\(index)] needs a match (use path_prefix: / for every path)") }
            return route
        }
    }
}
