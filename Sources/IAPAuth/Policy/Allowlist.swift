/// The allowlist file admins edit: one entry a line (see `AccessList` for the forms), `!` for
/// deny entries, `#` comments, blank lines, and `[group NAME]` sections whose lines (until the
/// next section) are that group's members:
///
///     # who may use the app
///     example.com
///     !contractor@example.com
///     group:ml-admins
///
///     [group ml-admins]
///     alice@example.com
///     bob@partner.example
public struct Allowlist: Sendable, Equatable {
    public var allow: [AccessList.Entry] = []
    public var deny: [AccessList.Entry] = []
    public var groups: [String: [AccessList.Entry]] = [:]

    public init() {}

    /// A problem on one line of an allowlist file.
    public struct Problem: Sendable, Equatable, CustomStringConvertible {
        public let line: Int
        public let message: String
        public var description: String { "line \(line): \(message)" }
    }

    /// Parses the whole text and reports every invalid line (with its number), not just the first.
    public static func parse(_ text: String) -> (allowlist: Allowlist, problems: [Problem]) {
        var result = Allowlist()
        var problems: [Problem] = []
        var currentGroup: String?
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = Substring(rawLine)
            if let hash = line.firstIndex(of: "#") { line = line[..<hash] }
            let text = line.trimmingWhitespace()
            if text.isEmpty { continue }
            let number = index + 1
            if text.hasPrefix("[") {
                let inner = text.dropFirst().dropLast().trimmingWhitespace()
                guard text.hasSuffix("]"), inner.hasPrefix("group "),
                    case let name = inner.dropFirst(6).trimmingWhitespace().lowercased(), AccessList.isGroupName(name)
                else {
                    problems.append(Problem(line: number, message: "\(String(text).debugDescription) is not a [group NAME] header"))
                    continue
                }
                if result.groups[name] != nil {
                    problems.append(Problem(line: number, message: "group \(name.debugDescription) is defined twice"))
                }
                result.groups[name] = []
                currentGroup = name
                continue
            }
            if text.contains(where: { $0 == " " || $0 == "\t" }) {
                problems.append(Problem(line: number, message: "one entry per line (found \(String(text).debugDescription))"))
                continue
            }
            let negated = text.hasPrefix("!")
            guard let entry = AccessList.parseEntry(negated ? text.dropFirst() : text) else {
                problems.append(Problem(line: number, message: "\(String(text).debugDescription) is not a domain, email, *@domain or group:NAME"))
                continue
            }
            if let group = currentGroup {
                if negated || entry.isGroup {
                    problems.append(Problem(line: number, message: "group members are plain entries (no ! or group:)"))
                } else {
                    result.groups[group, default: []].append(entry)
                }
            } else if negated {
                result.deny.append(entry)
            } else {
                result.allow.append(entry)
            }
        }
        return (result, problems)
    }

    /// Adds another file's entries and groups (a group defined twice across files is a problem).
    public mutating func merge(_ other: Allowlist) -> [String] {
        allow += other.allow
        deny += other.deny
        var problems: [String] = []
        for (name, members) in other.groups {
            if groups[name] != nil { problems.append("group \(name.debugDescription) is defined twice") }
            groups[name] = members
        }
        return problems
    }

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
