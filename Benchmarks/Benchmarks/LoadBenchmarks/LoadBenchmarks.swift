import Benchmark
import Foundation
import TurnkeeperCredentials
import TurnkeeperLoad
import TurnkeeperTURNClient

/// The load client's allocations in the steady state, against the coturn that scripts/benchmark-load.sh
/// starts (TURNKEEPER_BENCH_PORT, _SECRET_FILE): the same 20 voice calls with a 4 s and an 8 s window. Setup and
/// release are the same in both, so the difference in allocations is 4 s of steady state: 8,000 packets sent
/// and as many received.
let benchmarks: @Sendable () -> Void = {
    let environment = ProcessInfo.processInfo.environment
    guard let port = environment["TURNKEEPER_BENCH_PORT"], let secretPath = environment["TURNKEEPER_BENCH_SECRET_FILE"]
    else { return }
    for seconds in [4, 8] {
        Benchmark(
            "20 voice calls over UDP on loopback, a \(seconds) s window",
            configuration: .init(
                metrics: [.wallClock, .mallocCountTotal], warmupIterations: 0, maxDuration: .seconds(60),
                maxIterations: 1)
        ) { benchmark in
            let secret = try SecretFile.read(secretPath).secret
            // coturn refuses expiries past 2038 (signed 32-bit), so a plain hour from now.
            let expiry = Int64(Date().timeIntervalSince1970) + 3600
            let minter = try CredentialMinter(secret: secret)
            var minted: [TURNCredentials] = []
            for index in 0..<20 {
                let credential = minter.credential(user: "@bench-\(index):localhost", expiry: expiry)
                minted.append(TURNCredentials(username: credential.username, password: credential.password))
            }
            let credentials = minted
            let uri = try TURNURI("turn:127.0.0.1:\(port)?transport=udp")
            let endpoint = try await uri.endpoint()
            var thresholds = LoadThresholds()
            thresholds.jitterMs = 100_000
            thresholds.transitMs = 100_000
            thresholds.setupMs = 100_000
            let options = LoadOptions(
                credentials: { credentials[$0] }, steps: [20], stepDuration: .seconds(seconds), thresholds: thresholds)
            benchmark.startMeasurement()
            let report = await LoadRunner.run(uri, endpoint: endpoint, options: options) { false }
            benchmark.stopMeasurement()
            guard let step = report.steps.first, step.callsUp == 20, report.limit == nil else {
                fatalError("the benchmark's calls did not all come up and carry: \(report.limit ?? "no step")")
            }
            print("window \(seconds) s: \(step.packetsSent) packets sent, loss \(step.lossPercent) %")
        }
    }
}
