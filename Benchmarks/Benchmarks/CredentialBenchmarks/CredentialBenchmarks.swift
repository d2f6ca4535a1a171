import Benchmark
import TurnkeeperCredentials

/// Minting is what Synapse does on every /voip/turnServer call and what the rotation daemon does on
/// every check; one keyed HMAC context per secret is reused, as a busy homeserver would.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.throughput, .wallClock, .mallocCountTotal, .instructions],
        scalingFactor: .kilo,
        maxDuration: .seconds(3),
        maxIterations: 1_000_000
    )

    Benchmark("Mint credential (keyed context reused)") { benchmark in
        let minter = try CredentialMinter(secret: TurnSecret.generate())
        let expiry: Int64 = 1_795_710_971
        benchmark.startMeasurement()
        for offset in benchmark.scaledIterations {
            blackHole(minter.credential(user: "@alice:example.org", expiry: expiry + Int64(offset)))
        }
    }

    Benchmark("Mint credential (new context each time)") { benchmark in
        let secret = try TurnSecret.generate()
        let expiry: Int64 = 1_795_710_971
        benchmark.startMeasurement()
        for offset in benchmark.scaledIterations {
            let minter = try CredentialMinter(secret: secret)
            blackHole(minter.credential(user: "@alice:example.org", expiry: expiry + Int64(offset)))
        }
    }

    Benchmark("Verify credential against two secrets") { benchmark in
        let old = try TurnSecret.generate()
        let new = try TurnSecret.generate()
        let verifier = try CredentialVerifier(secrets: [old, new])
        let credential = try CredentialMinter(secret: new).credential(user: "@alice:example.org", expiry: 1_795_710_971)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(
                verifier.verify(username: credential.username, password: credential.password, nowSeconds: 1_795_000_000)
            )
        }
    }
}
