import AllocationLoop
import Benchmark
import Foundation
import Glibc
import TurnkeeperCredentials
import TurnkeeperProbe
import TurnkeeperSTUN
import TurnkeeperTURNClient

/// The codec on the message a TURN client handles most (an Allocate success response), and a whole
/// probe against the coturn that scripts/benchmark-probe.sh starts (TURNKEEPER_BENCH_PORT, _SECRET_FILE).
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        maxDuration: .seconds(3),
        maxIterations: 1_000_000
    )

    var response = STUNMessage(STUNMessageType(.allocate, .successResponse))
    response.appendXorAddress(.xorRelayedAddress, TransportAddress(ipv4: "203.0.113.7", port: 49_152)!)
    response.appendXorAddress(.xorMappedAddress, TransportAddress(ipv4: "198.51.100.20", port: 51_820)!)
    response.appendLifetime(600)
    response.appendText(.software, "Coturn-4.6.1 'Gorst'")
    let key = STUNIntegrityKey.longTerm(username: "1795710971:@alice:example.org", realm: "example.org", password: "pw")
    let wire = response.encoded(integrity: key, fingerprint: true)

    Benchmark("Decode Allocate success response (with typed reads)", configuration: .init(scalingFactor: .kilo)) {
        benchmark in
        for _ in benchmark.scaledIterations {
            let decoded = try DecodedSTUNMessage(wire)
            blackHole(try decoded.message.xorAddress(.xorRelayedAddress))
            blackHole(try decoded.message.lifetime())
        }
    }

    Benchmark("Encode Allocate success response (integrity + fingerprint)", configuration: .init(scalingFactor: .kilo))
    {
        benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(response.encoded(integrity: key, fingerprint: true))
        }
    }

    // A UDP port nothing listens on: the kernel answers ICMP port unreachable, which the probe's connected
    // socket hears. The verdict's time is the figure ("said within 1 s"; uclient: 6.5 to 8.1 ms).
    Benchmark(
        "Probe of a UDP port nothing listens on, to its verdict",
        configuration: .init(metrics: [.wallClock, .cpuTotal], maxDuration: .seconds(10), maxIterations: 200)
    ) { benchmark in
        let closed = try unusedUDPPort()
        let uri = try TURNURI("turn:127.0.0.1:\(closed)?transport=udp")
        let options = ProbeOptions(credentials: .init(username: "1:unused", password: "unused"))
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            let reports = await ProbeRunner.run([uri], options: options)
            guard reports.first?.steps.first?.failure == .refused else {
                fatalError("a probe of a closed UDP port was not refused: \(reports)")
            }
        }
    }

    let environment = ProcessInfo.processInfo.environment
    if let port = environment["TURNKEEPER_BENCH_PORT"], let secretPath = environment["TURNKEEPER_BENCH_SECRET_FILE"] {
        // What `turnutils_uclient -Y alloc` does a time (AllocationLoop); its CPU and system calls an allocation
        // are AllocationCost's, which counts them over the allocations alone.
        Benchmark(
            "Allocate and release from a new UDP socket (as uclient -Y alloc)",
            configuration: .init(
                metrics: [.wallClock, .mallocCountTotal], maxDuration: .seconds(10), maxIterations: 5_000)
        ) { benchmark in
            guard let number = Int(port) else { fatalError("TURNKEEPER_BENCH_PORT is not a port number") }
            let loop = try await AllocationLoop(port: number, secretFile: secretPath)
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                blackHole(try await loop.once())
            }
        }

        Benchmark(
            "Full probe, turn: over UDP on loopback (binding, 2 allocations, 2x10 packets each way)",
            configuration: .init(
                metrics: [.wallClock, .mallocCountTotal], maxDuration: .seconds(10), maxIterations: 200)
        ) { benchmark in
            let secret = try SecretFile.read(secretPath).secret
            // coturn refuses expiries past 2038 (signed 32-bit), so a plain hour from now.
            let expiry = Int64(Date().timeIntervalSince1970) + 3600
            let minted = try CredentialMinter(secret: secret).credential(user: "@bench:localhost", expiry: expiry)
            let options = ProbeOptions(credentials: .init(username: minted.username, password: minted.password))
            let uri = try TURNURI("turn:127.0.0.1:\(port)?transport=udp")
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                let reports = await ProbeRunner.run([uri], options: options)
                if !reports.allSatisfy(\.passed) {
                    let failed = reports.flatMap(\.steps).filter { $0.status == .fail }.map {
                        "\($0.step): \($0.detail)"
                    }
                    fatalError("the benchmark's coturn did not pass the probe: \(failed)")
                }
                blackHole(reports)
            }
        }
    }
}

/// A loopback UDP port that was free a moment ago (the kernel's choice for a socket bound to port 0, closed).
func unusedUDPPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
        }
    }
    guard bound else { throw POSIXError(.EADDRNOTAVAIL) }
    return Int(UInt16(bigEndian: address.sin_port))
}
