import Foundation
import Glibc
import TestSupport
import Testing
import TurnkeeperProbe
import TurnkeeperRotation

@testable import TurnkeeperDaemon

@Suite("Health listener, metrics and status line")
struct HealthAndMetricsTests {
    static func configuration() throws -> Configuration {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = try directory.write(
            "turnkeeper.yaml",
            "synapse: {config: [/nonexistent], group: nogroup}\ncoturn: {realm: r, verify_uri: \"turn:127.0.0.1:9\"}\n")
        return try Configuration.load(path)
    }

    @Test("Routes: /healthz, /readyz (503 with reasons until ready), /metrics, 404, 405; a silent client is cut off")
    func routes() async throws {
        let state = DaemonState(configuration: try Self.configuration(), notifier: SystemdNotifier(environment: [:]))
        let metrics = DaemonMetrics()
        let server = try await HealthServer.bind(host: "127.0.0.1", port: 0, requestTimeout: .milliseconds(500)) {
            await Daemon.route($0, state: state, metrics: metrics)
        }
        let port = try #require(server.address.port)
        let running = Task { try await server.run() }
        defer { running.cancel() }

        // A client that connects and says nothing holds no one up, and is dropped after the timeout.
        let silent = try LoopbackTCP.connect(port: port)
        defer { close(silent) }

        #expect(try HTTPGet.get(port: port, path: "/healthz").body == "ok\n")
        let notReady = try HTTPGet.get(port: port, path: "/readyz")
        #expect(notReady.status == 503)
        #expect(notReady.body.contains("the rotation state is not loaded yet") && notReady.body.contains("no probe"))
        state.update {
            $0.rotation = RotationStatus(phase: "idle", lastRotation: 100)
            $0.probePassed = true
        }
        #expect(try HTTPGet.get(port: port, path: "/readyz").status == 200)
        state.update {
            $0.failures = 2
            $0.lastError = "coturn did not answer"
        }
        let failing = try HTTPGet.get(port: port, path: "/readyz")
        #expect(failing.status == 503 && failing.body.contains("coturn did not answer"))
        #expect(try HTTPGet.get(port: port, path: "/metrics?x=1").status == 200)
        #expect(try HTTPGet.get(port: port, path: "/nope").status == 404)

        var buffer = [UInt8](repeating: 0, count: 16)
        #expect(recv(silent, &buffer, buffer.count, 0) == 0, "the silent client was not disconnected")
    }

    @Test("The metrics parse with prometheus_client and say what the state says")
    func metrics() throws {
        let metrics = DaemonMetrics()
        var snapshot = DaemonState.Snapshot(configuration: try Self.configuration())
        snapshot.rotation = RotationStatus(
            phase: "idle", retiring: [.init(fingerprint: "a", retiresAt: 2000)], lastRotation: 1000,
            nextRotationDue: 1000 + 604_800)
        snapshot.probeSteps = [
            .init(uri: "turn:h?transport=udp", step: "binding", passed: true, seconds: 0.002),
            .init(uri: "turn:h?transport=tcp", step: "allocation", passed: false, seconds: 3),
        ]
        snapshot.probePassed = false
        snapshot.lastProbe = 1500
        snapshot.failures = 1
        metrics.record(state: snapshot, now: 1600)
        metrics.record(coturnSecrets: 2)
        metrics.rotations(.ok).increment()
        metrics.record(coturnSecrets: nil)

        let families = try PrometheusText.parse(metrics.render())
        #expect(families.first { $0.name == "turnkeeper_rotations" }?.type == "counter")
        #expect(families.value("turnkeeper_rotations_total", ["result": "ok"]) == 1)
        #expect(families.value("turnkeeper_rotations_total", ["result": "failed"]) == 0)
        #expect(families.value("turnkeeper_last_rotation_timestamp_seconds") == 1000)
        #expect(families.value("turnkeeper_next_rotation_timestamp_seconds") == 605_800)
        #expect(families.value("turnkeeper_secret_age_seconds") == 600)
        #expect(families.value("turnkeeper_rotation_interval_seconds") == 604_800)
        #expect(families.value("turnkeeper_retiring_secrets") == 1)
        #expect(families.value("turnkeeper_rotation_failures_in_a_row") == 1)
        #expect(families.value("turnkeeper_probe_success", ["uri": "turn:h?transport=udp", "step": "binding"]) == 1)
        #expect(families.value("turnkeeper_probe_success", ["uri": "turn:h?transport=tcp", "step": "allocation"]) == 0)
        #expect(families.value("turnkeeper_probe_duration_seconds", ["step": "binding"]) == 0.002)
        #expect(families.value("turnkeeper_probe_passed") == 0)
        #expect(families.value("turnkeeper_last_probe_timestamp_seconds") == 1500)
        // The store was read once (2 secrets), then failed once.
        #expect(families.value("turnkeeper_coturn_accepted_secrets") == 2)
        #expect(families.value("turnkeeper_store_up", ["store": "coturn"]) == 0)
        #expect(families.value("turnkeeper_store_errors_total", ["store": "coturn"]) == 1)
    }

    @Test("The STATUS line reads as a sentence about phase, schedule, age and probe")
    func statusLine() throws {
        var snapshot = DaemonState.Snapshot(configuration: try Self.configuration())
        snapshot.rotation = RotationStatus(phase: "idle", currentAgeSeconds: 3700)
        snapshot.nextAction = 0
        snapshot.probeSteps = [.init(uri: "a", step: "binding", passed: true, seconds: 0)]
        snapshot.probePassed = true
        snapshot.lastProbe = 0
        #expect(
            DaemonState.statusLine(snapshot, now: 0)
                == "idle; next rotation step 1970-01-01 00:00:00 UTC; secret age 1h 1m 40s; probe ok (1 URI) at "
                + "1970-01-01 00:00:00 UTC")
        snapshot.failures = 2
        snapshot.lastError = "coturn refused"
        snapshot.probePassed = false
        snapshot.probeSteps[0].passed = false
        let failing = DaemonState.statusLine(snapshot, now: 0)
        #expect(
            failing.hasPrefix("rotation failing (2×): coturn refused") && failing.contains("probe FAILING on 1 of 1"))
        snapshot.stopping = true
        #expect(DaemonState.statusLine(snapshot, now: 0).hasPrefix("stopping"))
    }

    @Test("Probe results per URI and step: failed if any address failed, timed by the slowest; skips left out")
    func aggregate() {
        let targets = [
            TargetReport(
                uri: "u", transport: "udp", address: "127.0.0.1:1",
                steps: [
                    StepReport(step: .binding, status: .pass, milliseconds: 2, detail: ""),
                    StepReport(step: .allocation, status: .pass, milliseconds: 5, detail: ""),
                ]),
            TargetReport(
                uri: "u", transport: "udp", address: "[::1]:1",
                steps: [
                    StepReport(step: .binding, status: .pass, milliseconds: 8, detail: ""),
                    StepReport(step: .allocation, status: .fail, milliseconds: 3, detail: ""),
                    StepReport(step: .permission, status: .skip, milliseconds: 0, detail: ""),
                ]),
        ]
        let steps = ProbeService.aggregate(targets)
        #expect(steps.map(\.step) == ["binding", "allocation"])
        #expect(steps.map(\.passed) == [true, false])
        #expect(steps.map(\.seconds) == [0.008, 0.005])
    }
}
