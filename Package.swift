// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "iap-proxy",
    products: [
        .executable(name: "iap-proxy", targets: ["iap-proxy"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // libcrypto only: a JWT verifier needs no libssl (STYLE.md §2.2).
        .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .target(name: "IAPAuth", dependencies: ["COpenSSL", "CCurl"]),
        .target(name: "HTTP1"),
        .target(name: "CLinux", cSettings: [.define("_GNU_SOURCE")]),
        .target(
            name: "ProxyServer",
            dependencies: [
                "CLinux", "HTTP1", "IAPAuth",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "iap-proxy",
            dependencies: [
                "HTTP1",
                "IAPAuth",
                "ProxyServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        // `make bench-verify`: full verifications per second on one core.
        .executableTarget(name: "verify-bench", dependencies: ["IAPAuth", "COpenSSL"], path: "Sources/verify-bench"),
        .testTarget(name: "IAPAuthTests", dependencies: ["IAPAuth"]),
        .testTarget(name: "HTTP1Tests", dependencies: ["HTTP1"]),
        .testTarget(name: "ProxyServerTests", dependencies: ["ProxyServer", "IAPAuth"]),
        // Runs the built `iap-proxy` binary as a subprocess, as users and scripts do.
        .testTarget(name: "CommandTests", dependencies: ["iap-proxy"]),
    ],
    swiftLanguageModes: [.v6]
)
