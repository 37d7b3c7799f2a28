/// Who may pass once their assertion verified: Workspace domains (matched against the token's
/// `hd` claim, not the email's suffix) and single email addresses (exact, case-insensitive).
///
/// File format, one entry a line: `example.com` or `@example.com` (a domain), `alice@example.org`
/// (one user); `#` starts a comment (whole line or after the entry); blank lines are ignored.
public struct Allowlist: Sendable, Equatable {
    public let domains: Set<String>
    public let emails: Set<String>

    public init(domains: Set<String> = [], emails: Set<String> = []) {
        self.domains = Set(domains.map { $0.lowercased() })
        self.emails = Set(emails.map { $0.lowercased() })
    }

    /// A problem on one line of an allowlist file.
    public struct Problem: Sendable, Equatable, CustomStringConvertible {
        public let line: Int
        public let message: String
        public var description: String { "line \(line): \(message)" }
    }

    /// Parses the whole text and reports every invalid line (with its number), not just the first.
    public static func parse(_ text: String) -> (allowlist: Allowlist, problems: [Problem]) {
        var domains: Set<String> = []
        var emails: Set<String> = []
        var problems: [Problem] = []
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = Substring(rawLine)
            if let hash = line.firstIndex(of: "#") { line = line[..<hash] }
            let entry = line.trimmingWhitespace().lowercased()
            if entry.isEmpty { continue }
            if entry.contains(where: { $0 == " " || $0 == "\t" }) {
                problems.append(Problem(line: index + 1, message: "one entry per line (found \(entry.debugDescription))"))
            } else if entry.hasPrefix("@") {
                let domain = String(entry.dropFirst())
                if isDomain(domain) {
                    domains.insert(domain)
                } else {
                    problems.append(Problem(line: index + 1, message: "\(entry.debugDescription) is not a valid @domain"))
                }
            } else if let at = entry.firstIndex(of: "@") {
                let local = entry[..<at]
                let domain = String(entry[entry.index(after: at)...])
                if isLocalPart(local) && isDomain(domain) {
                    emails.insert(entry)
                } else {
                    problems.append(Problem(line: index + 1, message: "\(entry.debugDescription) is not a valid email address"))
                }
            } else if isDomain(entry) {
                domains.insert(entry)
            } else {
                problems.append(Problem(line: index + 1, message: "\(entry.debugDescription) is neither a domain nor an email address"))
            }
        }
        return (Allowlist(domains: domains, emails: emails), problems)
    }

    /// Why an identity was admitted, or nil when it was not. Stable codes for logs.
    public func admit(_ identity: Identity) -> String? {
        if emails.contains(identity.email) { return "email-ok" }
        if let domain = identity.hostedDomain, domains.contains(domain) { return "domain-ok" }
        return nil
    }

    public var count: Int { domains.count + emails.count }

    static func isDomain(_ text: String) -> Bool {
        let labels = text.split(separator: ".", omittingEmptySubsequences: false)
        guard labels.count >= 2, text.utf8.count <= 253 else { return false }
        return labels.allSatisfy { label in
            !label.isEmpty && label.utf8.count <= 63 && label.first != "-" && label.last != "-"
                && label.utf8.allSatisfy { isLowerAlphanumeric($0) || $0 == UInt8(ascii: "-") }
        }
    }

    static func isLocalPart(_ text: Substring) -> Bool {
        !text.isEmpty && text.utf8.count <= 64 && text.first != "." && text.last != "."
            && text.utf8.allSatisfy { isLowerAlphanumeric($0) || "!#$%&'*+/=?^_`{|}~.-".utf8.contains($0) }
    }

    private static func isLowerAlphanumeric(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
    }
}
