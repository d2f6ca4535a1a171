// swift-tools-version: 6.2
import PackageDescription

// Warnings are errors in every target of ours; dependencies are built as their authors ship them.
let strict: [SwiftSetting] = [
    .treatAllWarnings(as: .error),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

// Test targets import freely; the import-visibility rule guards library API only.
let testStrict: [SwiftSetting] = [.treatAllWarnings(as: .error)]

let package = Package(
    name: "turnkeeper",
    products: [
        .executable(name: "turnkeeper", targets: ["turnkeeper"]),
        .library(name: "TurnkeeperCrypto", targets: ["TurnkeeperCrypto"]),
        .library(name: "TurnkeeperCredentials", targets: ["TurnkeeperCredentials"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2")
    ],
    targets: [
        // libcrypto from OpenSSL 3, found through pkg-config.
        .systemLibrary(
            name: "CLibcrypto",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        // libc helpers Swift 6 cannot call directly.
        .target(name: "CSystemShims"),
        // Errors, and files replaced atomically. Depends on nothing of ours.
        .target(name: "TurnkeeperCore", swiftSettings: strict),
        // HMAC, digests, random bytes, constant-time comparison, base64.
        .target(name: "TurnkeeperCrypto", dependencies: ["CLibcrypto", "TurnkeeperCore"], swiftSettings: strict),
        // Shared secrets, secret files, durations, TURN REST credentials.
        .target(
            name: "TurnkeeperCredentials",
            dependencies: ["TurnkeeperCore", "TurnkeeperCrypto"],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "turnkeeper",
            dependencies: [
                "CSystemShims",
                "TurnkeeperCore",
                "TurnkeeperCredentials",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "TestSupport", dependencies: ["TurnkeeperCore"], path: "Tests/TestSupport", swiftSettings: testStrict),
        .testTarget(
            name: "TurnkeeperCoreTests", dependencies: ["TurnkeeperCore", "TestSupport"], swiftSettings: testStrict),
        .testTarget(
            name: "TurnkeeperCryptoTests", dependencies: ["TurnkeeperCrypto", "TestSupport"], swiftSettings: testStrict),
        .testTarget(
            name: "TurnkeeperCredentialsTests",
            dependencies: ["TurnkeeperCredentials", "TestSupport"],
            swiftSettings: testStrict
        ),
        // Runs the built `turnkeeper` binary and real coturn processes.
        .testTarget(
            name: "TurnkeeperCLITests",
            dependencies: ["turnkeeper", "TurnkeeperCredentials", "TestSupport"],
            swiftSettings: testStrict
        ),
    ]
)
