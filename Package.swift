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

func testTarget(_ name: String, _ dependencies: [Target.Dependency]) -> Target {
    .testTarget(name: name, dependencies: dependencies + ["TestSupport"], swiftSettings: testStrict)
}

let package = Package(
    name: "turnkeeper",
    products: [
        .executable(name: "turnkeeper", targets: ["turnkeeper"]),
        .library(name: "TurnkeeperCrypto", targets: ["TurnkeeperCrypto"]),
        .library(name: "TurnkeeperCredentials", targets: ["TurnkeeperCredentials"]),
        .library(name: "TurnkeeperSTUN", targets: ["TurnkeeperSTUN"]),
        .library(name: "TurnkeeperTURNClient", targets: ["TurnkeeperTURNClient"]),
        .library(name: "TurnkeeperCredentialSource", targets: ["TurnkeeperCredentialSource"]),
        .library(name: "TurnkeeperProbe", targets: ["TurnkeeperProbe"]),
        .library(name: "TurnkeeperExecution", targets: ["TurnkeeperExecution"]),
        .library(name: "TurnkeeperChecks", targets: ["TurnkeeperChecks"]),
        .library(name: "TurnkeeperAudit", targets: ["TurnkeeperAudit"]),
        .library(name: "TurnkeeperLoad", targets: ["TurnkeeperLoad"]),
        .library(name: "TurnkeeperCall", targets: ["TurnkeeperCall"]),
        .library(name: "TurnkeeperRESP", targets: ["TurnkeeperRESP"]),
        .library(name: "TurnkeeperPostgresWire", targets: ["TurnkeeperPostgresWire"]),
        .library(name: "TurnkeeperYAML", targets: ["TurnkeeperYAML"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        // libcrypto from OpenSSL 3, found through pkg-config.
        .systemLibrary(name: "CLibcrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        // SQLite 3, for coturn's user database.
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        // libyaml 0.2, the event parser under TurnkeeperYAML (PyYAML's C loader is the same library).
        .systemLibrary(name: "CLibYAML", pkgConfig: "yaml-0.1", providers: [.apt(["libyaml-dev"])]),
        // libc helpers Swift 6 cannot call directly.
        .target(name: "CSystemShims"),
        // Where async work runs and how it waits: Swift concurrency's global jobs on NIO's event loops, and
        // sleeps timed there, so an idle daemon never starts Dispatch's once-a-second worker monitor.
        .target(
            name: "TurnkeeperExecution",
            dependencies: [
                "CSystemShims", "TurnkeeperCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // Errors, and files replaced atomically. Depends on nothing of ours.
        .target(name: "TurnkeeperCore", swiftSettings: strict),
        // HMAC, digests, random bytes, constant-time comparison, base64.
        .target(name: "TurnkeeperCrypto", dependencies: ["CLibcrypto", "TurnkeeperCore"], swiftSettings: strict),
        // YAML as PyYAML's safe loader reads it (repeated keys: last wins), bounded, with errors that never
        // quote the document; and YAMLText, the one writer of YAML scalars (turnkeeper.yaml, Synapse's conf.d file).
        .target(name: "TurnkeeperYAML", dependencies: ["CLibYAML"], swiftSettings: strict),
        // STUN/TURN messages, attributes, ChannelData and stream framing. No I/O.
        .target(name: "TurnkeeperSTUN", dependencies: ["TurnkeeperCore", "TurnkeeperCrypto"], swiftSettings: strict),
        // STUN/TURN URIs (RFC 7064/7065) as text: parsing and checking, no I/O. Configuration validates with it.
        .target(name: "TurnkeeperURI", dependencies: ["TurnkeeperCore"], swiftSettings: strict),
        // A STUN/TURN client over UDP, TCP and TLS on SwiftNIO, and resolving and connecting to a URI.
        // Mechanism only: no diagnosis, no policy.
        .target(
            name: "TurnkeeperTURNClient",
            dependencies: [
                "TurnkeeperCore", "TurnkeeperCrypto", "TurnkeeperExecution", "TurnkeeperSTUN", "TurnkeeperURI",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strict
        ),
        // `turnkeeper probe`: steps against each URI and address, diagnosis, report. Policy lives here.
        .target(
            name: "TurnkeeperProbe",
            dependencies: [
                "TurnkeeperCore", "TurnkeeperExecution", "TurnkeeperSTUN", "TurnkeeperTURNClient",
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strict),
        // `turnkeeper audit`: what coturn relays to, refuses and says of itself (forbidden peers, quotas, TLS).
        .target(
            name: "TurnkeeperAudit",
            dependencies: [
                "TurnkeeperCore", "TurnkeeperExecution", "TurnkeeperProbe", "TurnkeeperSTUN", "TurnkeeperTURNClient",
            ],
            swiftSettings: strict),
        // `turnkeeper load`: many paced calls through coturn, judged on loss, jitter and coturn's own usage.
        .target(
            name: "TurnkeeperLoad",
            dependencies: [
                "TurnkeeperCore", "TurnkeeperExecution", "TurnkeeperProbe", "TurnkeeperSTUN", "TurnkeeperTURNClient",
            ],
            swiftSettings: strict),
        // `turnkeeper call`: one party of a call through two relays, media counted both ways.
        .target(
            name: "TurnkeeperCall",
            dependencies: [
                "TurnkeeperCore", "TurnkeeperExecution", "TurnkeeperProbe", "TurnkeeperSTUN", "TurnkeeperTURNClient",
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strict),
        // Shared secrets, secret files, durations, TURN REST credentials.
        .target(
            name: "TurnkeeperCredentials",
            dependencies: ["TurnkeeperCore", "TurnkeeperCrypto"],
            swiftSettings: strict
        ),
        // Redis's wire format, as much as the secret store needs. No I/O; fuzzed.
        .target(name: "TurnkeeperRESP", swiftSettings: strict),
        // PostgreSQL's wire protocol 3.0 and SCRAM-SHA-256, as much as the secret store needs. No I/O; fuzzed.
        .target(
            name: "TurnkeeperPostgresWire", dependencies: ["TurnkeeperCore", "TurnkeeperCrypto"], swiftSettings: strict),
        // Where the shared secret lives: coturn's SQLite user database, its config file, a shared Redis user
        // database, and Synapse's conf.d.
        .target(
            name: "TurnkeeperStores",
            dependencies: [
                "CSQLite", "TurnkeeperCore", "TurnkeeperCredentials", "TurnkeeperCrypto", "TurnkeeperExecution",
                "TurnkeeperPostgresWire", "TurnkeeperRESP",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strict
        ),
        // Synapse's configuration as Synapse reads it (files, conf.d, shallow merge), and its
        // client API's /voip/turnServer as a Matrix client calls it.
        .target(
            name: "TurnkeeperSynapse",
            dependencies: [
                "TurnkeeperCore",
                "TurnkeeperExecution",
                "TurnkeeperCredentials",
                "TurnkeeperCrypto",
                "TurnkeeperYAML",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strict
        ),
        // Where TURN credentials come from (a secret, a secret file, Synapse's config or its /voip/turnServer, a
        // client's credential), for probe, call and the daemon.
        .target(
            name: "TurnkeeperCredentialSource",
            dependencies: [
                "TurnkeeperCore", "TurnkeeperCredentials", "TurnkeeperSynapse", "TurnkeeperTURNClient",
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // The other apps that sign with the secret: Prosody's included config file and admin shell answers, a
        // file consumer's template, the credentials an app hands out. Rendering and parsing; no policy.
        .target(
            name: "TurnkeeperConsumers",
            dependencies: ["TurnkeeperCore", "TurnkeeperCredentials", "TurnkeeperYAML"],
            swiftSettings: strict
        ),
        // turnkeeper.yaml, typed: read (every error names file, line and key, never a value) and rendered.
        .target(
            name: "TurnkeeperConfiguration",
            dependencies: [
                "TurnkeeperConsumers", "TurnkeeperCore", "TurnkeeperCredentials", "TurnkeeperURI", "TurnkeeperYAML",
            ],
            swiftSettings: strict
        ),
        // The rotation protocol: one entry point for every role, the persisted state machine, the Synapse
        // switch, the allocation proofs. It drives the stores; it never decides when.
        // Each app that signs with the secret, switched to a new one: Synapse, a Prosody, any app through a file.
        // One protocol (preflight, switch, what it signs with now), driven by the rotation.
        .target(
            name: "TurnkeeperSwitching",
            dependencies: [
                "TurnkeeperConfiguration", "TurnkeeperConsumers", "TurnkeeperCore", "TurnkeeperCredentials",
                "TurnkeeperCrypto", "TurnkeeperExecution", "TurnkeeperStores", "TurnkeeperSynapse",
            ],
            swiftSettings: strict
        ),
        .target(
            name: "TurnkeeperRotation",
            dependencies: [
                "TurnkeeperConfiguration", "TurnkeeperCore", "TurnkeeperCredentials", "TurnkeeperExecution",
                "TurnkeeperStores", "TurnkeeperSwitching", "TurnkeeperSynapse", "TurnkeeperTURNClient",
                "TurnkeeperCrypto",
            ],
            swiftSettings: strict
        ),
        // `turnkeeper check`: Synapse's, coturn's and each consumer's configuration read together, the installed
        // coturn's advisories, coturn's clock, and what the store holds against turnkeeper's state. Reads only.
        .target(
            name: "TurnkeeperChecks",
            dependencies: [
                "TurnkeeperConfiguration", "TurnkeeperCore", "TurnkeeperCredentials", "TurnkeeperExecution",
                "TurnkeeperRotation", "TurnkeeperStores", "TurnkeeperSwitching", "TurnkeeperSynapse",
                "TurnkeeperTURNClient",
            ],
            swiftSettings: strict
        ),
        // `turnkeeper init`: reads Synapse's, coturn's and Prosody's configuration as this host has them and
        // proposes turnkeeper.yaml, saying what it found, chose and could not decide. Reading and deciding only.
        .target(
            name: "TurnkeeperSetup",
            dependencies: [
                "TurnkeeperConfiguration", "TurnkeeperCore", "TurnkeeperCredentials", "TurnkeeperCrypto",
                "TurnkeeperStores", "TurnkeeperSynapse",
            ],
            swiftSettings: strict
        ),
        // The call test page users run from their own network (HTML, CSS and JS in Page/, embedded as bytes),
        // with the headers it is served with and the static copy `turnkeeper calltest --out` writes.
        .target(
            name: "TurnkeeperCallTest",
            dependencies: ["TurnkeeperCore"],
            resources: [
                .embedInCode("Page/index.html"), .embedInCode("Page/calltest.js"), .embedInCode("Page/calltest.css"),
            ],
            swiftSettings: strict
        ),
        // `turnkeeper provision`: the reviewable bundle for a separate TURN host. Rendering is pure; the TLS
        // certificate and key are checked with libcrypto.
        .target(
            name: "TurnkeeperProvision",
            dependencies: ["TurnkeeperConfiguration", "TurnkeeperCore", "TurnkeeperCredentials", "TurnkeeperCrypto"],
            swiftSettings: strict
        ),
        // `turnkeeper run`: the services (rotation schedule, probes, health and metrics, systemd) and their
        // composition. Policy about when; the rotation itself stays in TurnkeeperRotation.
        .target(
            name: "TurnkeeperDaemon",
            dependencies: [
                "TurnkeeperAudit", "TurnkeeperCallTest", "TurnkeeperConfiguration", "TurnkeeperCore",
                "TurnkeeperCredentials", "TurnkeeperCredentialSource", "TurnkeeperExecution", "TurnkeeperProbe",
                "TurnkeeperRotation", "TurnkeeperSynapse", "TurnkeeperTURNClient",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "turnkeeper",
            dependencies: [
                "CSystemShims",
                "TurnkeeperAudit",
                "TurnkeeperCall",
                "TurnkeeperCallTest",
                "TurnkeeperChecks",
                "TurnkeeperConfiguration",
                "TurnkeeperCore",
                "TurnkeeperCredentials",
                "TurnkeeperCredentialSource",
                "TurnkeeperCrypto",
                "TurnkeeperExecution",
                "TurnkeeperLoad",
                "TurnkeeperProbe",
                "TurnkeeperSTUN",
                "TurnkeeperTURNClient",
                "TurnkeeperRotation",
                "TurnkeeperStores",
                "TurnkeeperDaemon",
                "TurnkeeperProvision",
                "TurnkeeperSetup",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),

        .target(
            name: "TestSupport",
            dependencies: [
                "CSystemShims", "TurnkeeperConfiguration", "TurnkeeperCredentials", "TurnkeeperSTUN",
                "TurnkeeperStores", "TurnkeeperTURNClient",
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "Tests/TestSupport",
            swiftSettings: testStrict
        ),
        testTarget("TurnkeeperCoreTests", ["TurnkeeperCore"]),
        testTarget("TurnkeeperCryptoTests", ["TurnkeeperCrypto"]),
        testTarget("TurnkeeperExecutionTests", ["TurnkeeperExecution"]),
        testTarget("TurnkeeperSTUNTests", ["TurnkeeperSTUN", "TurnkeeperCore", "TurnkeeperCrypto"]),
        testTarget("TurnkeeperCredentialsTests", ["TurnkeeperCredentials", "TurnkeeperCore"]),
        testTarget("TurnkeeperSynapseTests", ["TurnkeeperSynapse", "TurnkeeperCore", "TurnkeeperCredentials"]),
        testTarget("TurnkeeperYAMLTests", ["TurnkeeperYAML"]),
        testTarget("TurnkeeperPostgresWireTests", ["TurnkeeperPostgresWire", "TurnkeeperCore"]),
        testTarget("TurnkeeperConsumersTests", ["TurnkeeperConsumers", "TurnkeeperCore", "TurnkeeperCredentials"]),
        testTarget("TurnkeeperCallTestTests", ["TurnkeeperCallTest", "TurnkeeperCore"]),
        testTarget(
            "TurnkeeperConfigurationTests", ["TurnkeeperConfiguration", "TurnkeeperCore", "TurnkeeperCredentials"]),
        testTarget(
            "TurnkeeperSetupTests",
            ["TurnkeeperSetup", "TurnkeeperConfiguration", "TurnkeeperCredentials", "TurnkeeperCrypto"]),
        testTarget(
            "TurnkeeperProvisionTests", ["TurnkeeperProvision", "TurnkeeperConfiguration", "TurnkeeperCredentials"]),
        testTarget("TurnkeeperChecksTests", ["TurnkeeperChecks", "TurnkeeperStores"]),
        testTarget(
            "TurnkeeperRotationTests",
            [
                "TurnkeeperRotation", "TurnkeeperConfiguration", "TurnkeeperConsumers", "TurnkeeperCore",
                "TurnkeeperCredentials", "TurnkeeperExecution", "TurnkeeperStores", "TurnkeeperSynapse",
            ]
        ),
        testTarget(
            "TurnkeeperProbeTests",
            [
                "TurnkeeperAudit", "TurnkeeperCall", "TurnkeeperCore", "TurnkeeperLoad", "TurnkeeperProbe",
                "TurnkeeperSTUN", "TurnkeeperTURNClient",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        testTarget(
            "TurnkeeperStoresTests",
            [
                "TurnkeeperStores", "TurnkeeperCore", "TurnkeeperRESP", "TurnkeeperTURNClient", "TurnkeeperCredentials",
                "TurnkeeperSynapse", .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        testTarget(
            "TurnkeeperTURNClientTests",
            [
                "TurnkeeperTURNClient", "TurnkeeperCredentials", "TurnkeeperSTUN",
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]),
        testTarget(
            "TurnkeeperCredentialSourceTests",
            ["TurnkeeperCredentialSource", "TurnkeeperCore", "TurnkeeperCredentials", "TurnkeeperTURNClient"]
        ),
        testTarget(
            "TurnkeeperDaemonTests",
            [
                "TurnkeeperDaemon", "TurnkeeperConfiguration", "TurnkeeperCredentials", "TurnkeeperRotation",
                "TurnkeeperProbe", "TurnkeeperSynapse",
                .product(name: "Logging", package: "swift-log"), .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ServiceLifecycleTestKit", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        // Runs the built `turnkeeper` binary and real coturn processes.
        testTarget(
            "TurnkeeperCLITests",
            [
                "turnkeeper", "TurnkeeperConfiguration", "TurnkeeperCredentials", "TurnkeeperProbe",
                "TurnkeeperStores", "TurnkeeperSynapse",
                "TurnkeeperTURNClient",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
    ]
)
