/// A configuration that cannot be used, with every problem found (not just the first).
public struct ConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    public let problems: [String]
    public init(_ problems: [String]) { self.problems = problems }
    public var description: String { problems.joined(separator: "\n") }
}

/// What a valid assertion must satisfy: the settings of DESIGN rules 2–10.
public struct VerifierConfig: Sendable {
    /// IAP's issuer (rule 10).
    public static let iapIssuer = "https://cloud.google.com/iap"
    /// IAP's assertions live 10 minutes (rule 8).
    public static let iapMaximumLifetime: Int64 = 600

    /// Accepted `aud` values, each compared exactly.
    public let audiences: Set<String>
    public let issuer: String
    /// Clock skew tolerated on `exp`, `iat` and `nbf`, in seconds.
    public let leeway: Int64
    /// Longest accepted `exp − iat`, before adding twice the leeway.
    public let maximumLifetime: Int64
    public let algorithms: Set<JWSAlgorithm>
    /// Longest accepted token, in bytes (rule 2).
    public let maximumTokenBytes: Int

    /// Validates everything at once. With IAP's issuer, each audience must have one of IAP's
    /// shapes (see `IAPAudience`); an empty audience list is always an error.
    public init(
        audiences: [String],
        issuer: String = VerifierConfig.iapIssuer,
        leeway: Int64 = 30,
        maximumLifetime: Int64 = VerifierConfig.iapMaximumLifetime,
        algorithms: Set<JWSAlgorithm> = [.es256],
        maximumTokenBytes: Int = 8192
    ) throws(ConfigurationError) {
        var problems: [String] = []
        if audiences.isEmpty { problems.append("no audience configured: set at least one (--audience)") }
        if issuer == Self.iapIssuer {
            for audience in audiences where !IAPAudience.isValid(audience) {
                problems.append("audience \(audience.debugDescription) is not an IAP audience; \(IAPAudience.shapes)")
            }
        }
        if issuer.isEmpty { problems.append("issuer is empty") }
        if !(0...600).contains(leeway) { problems.append("leeway \(leeway) s is outside 0…600 s") }
        if maximumLifetime <= 0 { problems.append("maximum lifetime must be positive") }
        if algorithms.isEmpty { problems.append("no signature algorithm allowed") }
        if !(256...65536).contains(maximumTokenBytes) { problems.append("token size cap outside 256…65536 bytes") }
        guard problems.isEmpty else { throw ConfigurationError(problems) }
        self.audiences = Set(audiences)
        self.issuer = issuer
        self.leeway = leeway
        self.maximumLifetime = maximumLifetime
        self.algorithms = algorithms
        self.maximumTokenBytes = maximumTokenBytes
    }
}

/// The shapes IAP gives `aud` (Google's "Securing your app with signed headers").
public enum IAPAudience {
    public static let shapes =
        "expected /projects/NUMBER/global/backendServices/ID, /projects/NUMBER/regions/REGION/backendServices/ID, "
        + "/projects/NUMBER/apps/PROJECT_ID or /projects/NUMBER/locations/REGION/services/NAME"

    public static func isValid(_ audience: String) -> Bool {
        let parts = audience.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count >= 5, parts[0].isEmpty, parts[1] == "projects", isNumber(parts[2]) else { return false }
        switch (parts.count, parts[3]) {
        case (6, "global"): return parts[4] == "backendServices" && isNumber(parts[5])
        case (7, "regions"): return isName(parts[4]) && parts[5] == "backendServices" && isNumber(parts[6])
        case (5, "apps"): return isProjectID(parts[4])
        case (7, "locations"): return isName(parts[4]) && parts[5] == "services" && isName(parts[6])
        default: return false
        }
    }

    private static func isNumber(_ part: Substring) -> Bool {
        !part.isEmpty && part.utf8.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
    }

    /// Lowercase letters, digits and hyphens (region, Cloud Run service names).
    private static func isName(_ part: Substring) -> Bool {
        !part.isEmpty
            && part.utf8.allSatisfy {
                ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z")) || ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9"))
                    || $0 == UInt8(ascii: "-")
            }
    }

    /// A project ID; legacy domain-scoped IDs look like `example.com:project`.
    private static func isProjectID(_ part: Substring) -> Bool {
        isName(Substring(part.filter { $0 != "." && $0 != ":" }))
    }
}
