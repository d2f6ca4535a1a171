// swift-tools-version: 6.1
import PackageDescription

// Benchmarks live in their own package so that the main build and CI never compile the harness.
let package = Package(
    name: "TurnkeeperBenchmarks",
    dependencies: [
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(name: "turnkeeper", path: "../"),
    ],
    targets: [
        .executableTarget(
            name: "CredentialBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "TurnkeeperCredentials", package: "turnkeeper"),
            ],
            path: "Benchmarks/CredentialBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .target(
            name: "AllocationLoop",
            dependencies: [
                .product(name: "TurnkeeperCredentials", package: "turnkeeper"),
                .product(name: "TurnkeeperTURNClient", package: "turnkeeper"),
            ],
            path: "Benchmarks/AllocationLoop"
        ),
        // Not a benchmark: the CPU and system calls of N allocations, for scripts/benchmark-probe.sh.
        .executableTarget(
            name: "AllocationCost",
            dependencies: [
                "AllocationLoop",
                .product(name: "TurnkeeperExecution", package: "turnkeeper"),
            ],
            path: "Benchmarks/AllocationCost"
        ),
        .executableTarget(
            name: "ProbeBenchmarks",
            dependencies: [
                "AllocationLoop",
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "TurnkeeperSTUN", package: "turnkeeper"),
                .product(name: "TurnkeeperProbe", package: "turnkeeper"),
                .product(name: "TurnkeeperTURNClient", package: "turnkeeper"),
                .product(name: "TurnkeeperCredentials", package: "turnkeeper"),
            ],
            path: "Benchmarks/ProbeBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "LoadBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "TurnkeeperLoad", package: "turnkeeper"),
                .product(name: "TurnkeeperTURNClient", package: "turnkeeper"),
                .product(name: "TurnkeeperCredentials", package: "turnkeeper"),
            ],
            path: "Benchmarks/LoadBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
