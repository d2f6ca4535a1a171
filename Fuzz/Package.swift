// swift-tools-version: 6.2
import PackageDescription

// libFuzzer targets for the STUN/TURN codec, the RESP and PostgreSQL codecs and the YAML reader. A nested package, because libFuzzer supplies `main`
// (hence -parse-as-library) and the root package stays free of unsafe flags.
// Build and run with scripts/fuzz.sh.
let fuzzer: [SwiftSetting] = [.unsafeFlags(["-parse-as-library"])]

let package = Package(
    name: "TurnkeeperFuzz",
    dependencies: [.package(name: "turnkeeper", path: "../")],
    targets: [
        .executableTarget(
            name: "FuzzSTUNMessage",
            dependencies: [.product(name: "TurnkeeperSTUN", package: "turnkeeper")],
            swiftSettings: fuzzer
        ),
        .executableTarget(
            name: "FuzzRESP",
            dependencies: [.product(name: "TurnkeeperRESP", package: "turnkeeper")],
            swiftSettings: fuzzer
        ),
        .executableTarget(
            name: "FuzzYAML",
            dependencies: [.product(name: "TurnkeeperYAML", package: "turnkeeper")],
            swiftSettings: fuzzer
        ),
        .executableTarget(
            name: "FuzzPostgres",
            dependencies: [.product(name: "TurnkeeperPostgresWire", package: "turnkeeper")],
            swiftSettings: fuzzer
        ),
        .executableTarget(
            name: "FuzzStreamFramer",
            dependencies: [.product(name: "TurnkeeperSTUN", package: "turnkeeper")],
            swiftSettings: fuzzer
        ),
    ]
)
