/// The routing and access policy: an immutable snapshot, built and validated whole before it
/// replaces the previous one (a broken edit never half-applies).
public struct Policy: Sendable {
    public let routes: [Route]
    /// Every route's identity-header names, lowercased: a client-sent header of any of these names
    /// is removed on every route (an app may read `X-Tenant` on paths whose route does not set it).
    public let identityHeaderNames: [String]
    /// Some route names a host: only then is the request's Host normalized for matching.
    private let matchesHosts: Bool

    /// Routes are tried most specific first (host before no host, exact path before prefix, longer
    /// prefix before shorter, then file order); a request that matches none is denied.
    public init(routes: [Route]) {
        self.routes = routes.enumerated().sorted { lhs, rhs in
            let (left, right) = (lhs.element.specificity, rhs.element.specificity)
            return left != right ? left > right : lhs.offset < rhs.offset
        }.map(\.element)
        identityHeaderNames = Set(routes.flatMap { $0.identityHeaders.headers.map { $0.name.lowercased() } }).sorted()
        matchesHosts = routes.contains { $0.host != nil }
    }

    /// Allow and deny entries across routes (for logs).
    public var entryCount: Int {
        routes.reduce(0) { total, route in
            if case .verified(let list) = route.auth { return total + list.count }
            return total
        }
    }

    /// The route for a request: `host` without port, `path` normalized, `method` as sent.
    public func route(host: String?, path: RequestPath, method: String) -> Route? {
        let host = matchesHosts ? host.map(Route.normalizeHost) : nil
        var matchKey = path.matchKey
        return matchKey.withUTF8 { key in routes.first { $0.matches(host: host, key: key, method: method) } }
    }

    /// The decision for an identity on a route (allow list, deny entries, access levels).
    public static func decide(_ route: Route, _ identity: Identity) -> AccessDecision {
        guard case .verified(let list) = route.auth else { return .allow("no-auth", detail: "") }
        let decision = list.decide(identity)
        guard decision.isAllowed else { return decision }
        if let missing = route.requiredAccessLevels.first(where: { !identity.accessLevels.contains($0) }) {
            return .deny("access-level-missing", detail: missing)
        }
        return decision
    }
}

/// One route: what it matches and what it requires.
/// A class: it travels with every request (admission, exchange, log), and a reference is one retain
/// where a copy of its fields was a dozen.
public final class Route: Sendable {
    public enum Auth: Sendable, Equatable {
        /// A verified assertion and this access list.
        case verified(AccessList)
        /// Answered without identity: no assertion needed, never given identity headers.
        case none
    }

    /// Where the route was defined (`routes[2]` or its `name`), for logs and whoami.
    public let name: String
    public let host: String?
    /// Matched against the path's `matchKey`; lowercase.
    public let pathPrefix: String?
    public let exactPath: String?
    private let pathPrefixBytes: [UInt8]?
    /// Without a trailing slash: `/x` and `/x/` are the same exact path.
    private let exactPathBytes: [UInt8]?
    public let methods: Set<String>?
    public let auth: Auth
    public let requiredAccessLevels: [String]
    public let identityHeaders: IdentityHeaders
    /// Log what would be denied, but let it through (rolling out a new list).
    public let reportOnly: Bool
    public let allowEncodedSlashes: Bool
    /// Answer locally with 200 and this body, without calling the app (load balancer health checks).
    public let localResponse: String?

    public init(
        name: String, host: String? = nil, pathPrefix: String? = nil, exactPath: String? = nil,
        methods: Set<String>? = nil, auth: Auth, requiredAccessLevels: [String] = [],
        identityHeaders: IdentityHeaders, reportOnly: Bool = false, allowEncodedSlashes: Bool = false,
        localResponse: String? = nil
    ) {
        self.name = name
        self.host = host.map(Self.normalizeHost)
        self.pathPrefix = pathPrefix?.lowercased()
        self.exactPath = exactPath?.lowercased()
        pathPrefixBytes = self.pathPrefix.map { Array($0.utf8) }
        exactPathBytes = self.exactPath.map { Array(Self.withoutTrailingSlash(Array($0.utf8))) }
        // Apps answer HEAD with their GET handler (Werkzeug, Express, Rails): a GET rule covers it.
        self.methods = methods.map { $0.contains("GET") ? $0.union(["HEAD"]) : $0 }
        self.auth = auth
        self.requiredAccessLevels = requiredAccessLevels
        self.identityHeaders = identityHeaders
        self.reportOnly = reportOnly
        self.allowEncodedSlashes = allowEncodedSlashes
        self.localResponse = localResponse
    }

    /// Lowercase, without the port or a final dot (`Mlflow.Example.com.:443` → `mlflow.example.com`).
    static func normalizeHost(_ host: String) -> String {
        // Most Host fields are already normal (lowercase name, no port): the same string.
        if host.utf8.last != UInt8(ascii: "."), host.utf8.allSatisfy({ isLowercaseHostByte($0) }) { return host }
        var host = Substring(host.lowercased())
        if host.hasPrefix("[") {
            if let close = host.firstIndex(of: "]") { host = host[...close] }
        } else if let colon = host.lastIndex(of: ":") {
            host = host[..<colon]
        }
        if host.hasSuffix(".") { host = host.dropLast() }  // the same name, fully qualified
        return String(host)
    }

    private static func isLowercaseHostByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."):
            return true
        default: return false
        }
    }

    /// A prefix matches whole segments: `/api` matches `/api` and `/api/x`, not `/apix`. An exact
    /// path matches with or without a trailing slash (most apps serve both alike).
    /// `key` is the request path's `matchKey` as bytes: compared byte by byte, as paths are bytes
    /// (String's prefix tests are Unicode-aware, and a route table is walked on every request).
    func matches(host requestHost: String?, key: UnsafeBufferPointer<UInt8>, method: String) -> Bool {
        if let host, host != requestHost { return false }
        if let methods, !methods.contains(method) { return false }
        if let exactPath = exactPathBytes { return Self.withoutTrailingSlash(key).elementsEqual(exactPath) }
        guard let prefix = pathPrefixBytes else { return true }
        if prefix.count == 1 && prefix[0] == UInt8(ascii: "/") { return true }  // everything, `OPTIONS *` included
        guard key.starts(with: prefix) else { return false }
        // Whole segments: the prefix ends with "/", or the key ends with it or goes on with "/".
        return prefix.last == UInt8(ascii: "/") || key.count == prefix.count || key[prefix.count] == UInt8(ascii: "/")
    }

    private static func withoutTrailingSlash<Path: BidirectionalCollection<UInt8>>(_ path: Path) -> Path.SubSequence {
        path.count > 1 && path.last == UInt8(ascii: "/") ? path.dropLast() : path[...]
    }

    /// Orders routes: host, then exact path, then prefix length, then methods.
    var specificity: [Int] {
        [host == nil ? 0 : 1, exactPath == nil ? 0 : 1, (exactPath ?? pathPrefix ?? "").count, methods == nil ? 0 : 1]
    }
}

extension [Int]: @retroactive Comparable {
    public static func < (lhs: [Int], rhs: [Int]) -> Bool { lhs.lexicographicallyPrecedes(rhs) }
}
