/// Who a route admits: allow entries and deny entries (deny wins), resolved into sets once per
/// policy load so a decision is a handful of hash lookups, whatever the list's size.
///
/// Entries, as written in allowlist files and `allow:` lists:
/// - `example.com` or `@example.com`: a Workspace domain, matched against the token's `hd` claim
///   (never the email's suffix: consumer accounts have no `hd` and match no domain entry);
/// - `alice@example.org`: one address, case-insensitive;
/// - `*@my-project.iam.gserviceaccount.com`: any address at exactly that domain, by the email
///   itself (for service accounts and other accounts without `hd`);
/// - `group:NAME`: the members of a group;
/// - `!` before any of these: a deny entry.
public struct AccessList: Sendable, Equatable {
    /// One entry, parsed.
    public enum Entry: Hashable, Sendable {
        case email(String)
        case domain(String)
        case emailDomain(String)
        case group(String)

        public var isGroup: Bool {
            if case .group = self { return true }
            return false
        }
    }

    /// A set of identities: what an entry (or a group) covers.
    struct Members: Sendable, Equatable {
        var emails: Set<String> = []
        var domains: Set<String> = []
        var emailDomains: Set<String> = []

        /// Why `identity` is covered, or nil.
        func match(_ identity: Identity) -> String? {
            if emails.contains(identity.email) { return "email" }
            if let domain = identity.hostedDomain, domains.contains(domain) { return "domain" }
            if !emailDomains.isEmpty, let at = identity.email.lastIndex(of: "@"),  // spares a String per request
                emailDomains.contains(String(identity.email[identity.email.index(after: at)...]))
            {
                return "email-domain"
            }
            return nil
        }

        mutating func add(_ entry: Entry) {
            switch entry {
            case .email(let email): emails.insert(email)
            case .domain(let domain): domains.insert(domain)
            case .emailDomain(let domain): emailDomains.insert(domain)
            case .group: break  // resolved by the caller
            }
        }

        var count: Int { emails.count + domains.count + emailDomains.count }
    }

    private var allow = Members()
    private var deny = Members()
    private var allowGroups: [(name: String, members: Members)] = []
    private var denyGroups: [(name: String, members: Members)] = []
    /// Every entry, for reload summaries (added/removed).
    public private(set) var entries: Set<String> = []

    /// Builds the list; `groups` resolves `group:NAME` entries (an unknown group is an error).
    public init(allow: [Entry], deny: [Entry], groups: [String: [Entry]]) throws(ConfigurationError) {
        var problems: [String] = []
        func resolve(_ entries: [Entry], into members: inout Members, groupsOut: inout [(name: String, members: Members)]) {
            for entry in entries {
                guard case .group(let name) = entry else {
                    members.add(entry)
                    continue
                }
                guard let groupEntries = groups[name] else {
                    problems.append("unknown group \(name.debugDescription)")
                    continue
                }
                var groupMembers = Members()
                for member in groupEntries {
                    if case .group(let nested) = member {
                        problems.append("group \(name.debugDescription) names group \(nested.debugDescription): groups do not nest")
                    } else {
                        groupMembers.add(member)
                    }
                }
                groupsOut.append((name, groupMembers))
            }
        }
        resolve(allow, into: &self.allow, groupsOut: &allowGroups)
        resolve(deny, into: &self.deny, groupsOut: &denyGroups)
        guard problems.isEmpty else { throw ConfigurationError(problems) }
        entries = Set(allow.map(Self.describe) + deny.map { "!" + Self.describe($0) })
    }

    /// The decision for a verified identity: deny entries first, then allow entries.
    public func decide(_ identity: Identity) -> AccessDecision {
        if let kind = deny.match(identity) { return .deny("denied-by-\(kind)", detail: identity.email) }
        for group in denyGroups where group.members.match(identity) != nil {
            return .deny("denied-by-group", detail: group.name)
        }
        if let kind = allow.match(identity) { return .allow("\(kind)-ok", detail: "") }
        for group in allowGroups where group.members.match(identity) != nil {
            return .allow("group-ok", detail: group.name)
        }
        return .deny(RejectionReason.notAllowlisted.rawValue, detail: identity.email)
    }

    public var count: Int { allow.count + deny.count + allowGroups.reduce(0) { $0 + $1.members.count } }

    public static func == (lhs: AccessList, rhs: AccessList) -> Bool { lhs.entries == rhs.entries }

    static func describe(_ entry: Entry) -> String {
        switch entry {
        case .email(let email): return email
        case .domain(let domain): return domain
        case .emailDomain(let domain): return "*@" + domain
        case .group(let name): return "group:" + name
        }
    }

    /// Parses one entry (without a leading `!`); nil when it is none of the forms above.
    public static func parseEntry(_ text: Substring) -> Entry? {
        let entry = text.lowercased()
        if entry.hasPrefix("group:") {
            let name = String(entry.dropFirst(6))
            return isGroupName(name) ? .group(name) : nil
        }
        if entry.hasPrefix("*@") {
            let domain = String(entry.dropFirst(2))
            return Allowlist.isDomain(domain) ? .emailDomain(domain) : nil
        }
        if entry.hasPrefix("@") {
            let domain = String(entry.dropFirst())
            return Allowlist.isDomain(domain) ? .domain(domain) : nil
        }
        if let at = entry.firstIndex(of: "@") {
            let domain = String(entry[entry.index(after: at)...])
            return Allowlist.isLocalPart(entry[..<at]) && Allowlist.isDomain(domain) ? .email(entry) : nil
        }
        return Allowlist.isDomain(entry) ? .domain(entry) : nil
    }

    static func isGroupName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 64
            && name.utf8.allSatisfy {
                ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z")) || ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9"))
                    || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".")
            }
    }
}

/// A policy decision with a stable kebab-case reason (for logs and metric labels) and a detail.
public enum AccessDecision: Sendable, Equatable {
    case allow(String, detail: String)
    case deny(String, detail: String)

    public var isAllowed: Bool {
        if case .allow = self { return true }
        return false
    }

    public var reason: String {
        switch self {
        case .allow(let reason, _), .deny(let reason, _): return reason
        }
    }
}
