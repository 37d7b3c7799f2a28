/// Recognises identity-carrying request fields that must be stripped before the proxy adds its own
/// (DESIGN.md "Identity headers out"). Names compare with identity normalization: ASCII case-insensitive
/// and `_` equal to `-`, so `X_Forwarded_Email` is caught (CVE-2025-64484).
public struct IdentityHeaderMatcher: Sendable {
    /// Always-stripped exact names.
    public static let defaultNames = [
        "x-forwarded-user", "x-forwarded-email", "x-forwarded-groups", "x-forwarded-preferred-username",
        "remote-user", "kubeflow-userid",
    ]
    /// Always-stripped name prefixes.
    public static let defaultPrefixes = ["x-auth-request-", "x-webauth-", "x-goog-authenticated-user-"]

    private let names: [[UInt8]]
    private let prefixes: [[UInt8]]

    /// The defaults plus `extraNames` (e.g. the route's configured output headers) and `extraPrefixes`.
    public init(extraNames: [String] = [], extraPrefixes: [String] = []) {
        names = (Self.defaultNames + extraNames).map { HeaderName.normalized($0.utf8) }
        prefixes = (Self.defaultPrefixes + extraPrefixes).map { HeaderName.normalized($0.utf8) }
    }

    /// Whether a field named `name` is identity-carrying.
    public func matches(_ name: ArraySlice<UInt8>) -> Bool {
        name.withUnsafeBytes { bytes in
            names.contains { $0.withUnsafeBytes { ASCII.equals(bytes, $0, by: ASCII.normalizedNameByte) } }
                || prefixes.contains { prefix in
                    bytes.count >= prefix.count
                        && prefix.withUnsafeBytes {
                            ASCII.equals(
                                UnsafeRawBufferPointer(rebasing: bytes.prefix($0.count)), $0,
                                by: ASCII.normalizedNameByte)
                        }
                }
        }
    }
}
