import Foundation
import Glibc
import TestSupport
import Testing
import TurnkeeperConfiguration
import TurnkeeperProbe
import TurnkeeperRotation

@testable import TurnkeeperDaemon

@Suite("Health listener, metrics and status line", .mayBlock)
struct HealthAndMetricsTests {
    static func configuration() -> Configuration {
        Configuration(
            synapse: .init(configPaths: ["/nonexistent"], group: "nogroup"),
            coturn: .init(realm: "r", verifyURI: "turn:127.0.0.1:9"))
    }

    @Test("Routes: /healthz, /readyz (503 with reasons until ready), /metrics, 404, 405; a silent client is cut off")
    func routes() async throws {
        let state = DaemonState(host: Host(Self.configuration()), notifier: SystemdNotifier(environment: [:]))
        let metrics = DaemonMetrics()
        // The silent client is cut at the head timeout; the requests below are sent at once, and a generous
        // timeout means a loaded machine cannot cut them off first.
        let server = try await HealthServer.bind(host: "127.0.0.1", port: 0, headTimeout: .seconds(10)) {
            await Daemon.route($0, state: state, metrics: metrics)
        }
        let port = try #require(server.address.port)
        let running = Task(executorPreference: BlockingTolerantExecutor.shared) { try await server.run() }
        defer { running.cancel() }

        // Blocking calls run off the cooperative pool, which the server in this process needs to answer them.
        func get(_ path: String) async throws -> HTTPGet.Answer {
            try await runOffPool { try HTTPGet.get(port: port, path: path) }
        }

        // A client that connects and says nothing holds no one up, and is dropped after the timeout.
        let silent = try LoopbackTCP.connect(port: port)
        defer { close(silent) }

        #expect(try await get("/healthz").body == "ok\n")
        let notReady = try await get("/readyz")
        #expect(notReady.status == 503)
        #expect(notReady.body.contains("the rotation state is not loaded yet") && notReady.body.contains("no probe"))
        state.update {
            $0.rotation = RotationStatus(phase: "idle", lastRotation: 100)
            $0.probePassed = true
        }
        #expect(try await get("/readyz").status == 200)
        state.update {
            $0.failures = 2
            $0.lastError = "coturn did not answer"
        }
        let failing = try await get("/readyz")
        #expect(failing.status == 503 && failing.body.contains("coturn did not answer"))
        #expect(try await get("/metrics?x=1").status == 200)
        #expect(try await get("/nope").status == 404)

        let ended = try await runOffPool {
            var buffer = [UInt8](repeating: 0, count: 16)
            return recv(silent, &buffer, buffer.count, 0)
        }
        #expect(ended == 0, "the silent client was not disconnected")
    }

    @Test("The call test page: 404 unless daemon.calltest_homeserver is set; then served under its CSP")
    func callTestPage() async throws {
        let state = DaemonState(host: Host(Self.configuration()), notifier: SystemdNotifier(environment: [:]))
        let metrics = DaemonMetrics()
        let off = await Daemon.route("/calltest/", state: state, metrics: metrics)
        #expect(off.status == .notFound && off.body.contains("daemon.calltest_homeserver"))

        var configuration = Self.configuration()
        configuration.daemon.calltestHomeserver = HomeserverURL("https://Matrix.Example.org:8448/")
        state.update { $0.host = Host(configuration) }
        let page = await Daemon.route("/calltest/", state: state, metrics: metrics)
        #expect(page.status == .ok && page.contentType.hasPrefix("text/html") && page.body.contains("calltest.js"))
        let headers = Dictionary(uniqueKeysWithValues: page.headers)
        #expect(
            headers["Content-Security-Policy"]?.contains("connect-src 'self' https://matrix.example.org:8448;") == true,
            "\(headers)")
        #expect(headers["X-Content-Type-Options"] == "nosniff")
        let config = await Daemon.route("/calltest/config.json", state: state, metrics: metrics)
        #expect(config.body == "{\"homeserver\": \"https://Matrix.Example.org:8448\"}\n")
        let bare = await Daemon.route("/calltest", state: state, metrics: metrics)
        #expect(bare.status == .movedPermanently && bare.headers.first { $0.0 == "Location" }?.1 == "/calltest/")
        #expect(await Daemon.route("/calltest/../metrics", state: state, metrics: metrics).status == .notFound)
        #expect(await Daemon.route("/calltest/turnkeeper.yaml", state: state, metrics: metrics).status == .notFound)
    }

    @Test(
        "At the limit, the oldest connection still waiting for its request gives way; a silent one is cut at the head timeout"
    )
    func connectionLimit() async throws {
        let server = try await HealthServer.bind(
            host: "127.0.0.1", port: 0, headTimeout: .seconds(20), requestTimeout: .seconds(300),
            maxConnections: 2
        ) { _ in HealthServer.Response(status: .ok, body: "ok\n") }
        #expect(server.maxConnections == 2)
        let port = try #require(server.address.port)
        let running = Task(executorPreference: BlockingTolerantExecutor.shared) { try await server.run() }
        defer { running.cancel() }

        /// Connects, then waits until the server counts the connection, so that the order is the server's too.
        func connect(holding count: Int, receiveTimeout: Int) async throws -> Int32 {
            let socket = try LoopbackTCP.connect(port: port, timeoutSeconds: receiveTimeout)
            // A hang guard, generous for a loaded machine.
            let deadline = ContinuousClock.now + .seconds(60)
            while server.limiter.count < count {
                guard ContinuousClock.now < deadline else { throw TestFailure("connection \(count) not admitted") }
                try await Task.sleep(for: .milliseconds(10))
            }
            return socket
        }
        // Its receive timeout (10 s) ends before the head timeout (20 s): only the limit can close it in time.
        let oldest = try await connect(holding: 1, receiveTimeout: 10)
        defer { close(oldest) }
        let newer = try await connect(holding: 2, receiveTimeout: 60)
        defer { close(newer) }

        // Blocking calls run off the cooperative pool, which the server in this process needs.
        func read(_ socket: Int32, flags: Int32 = 0) async throws -> (Int, Int32) {
            try await runOffPool {
                var byte: UInt8 = 0
                let count = recv(socket, &byte, 1, flags)
                return (count, errno)
            }
        }
        // A third connection, a request: answered, and the oldest idle one closed for it.
        #expect(try await runOffPool { try HTTPGet.get(port: port, path: "/healthz") }.status == 200)
        #expect(try await read(oldest).0 == 0, "the oldest idle connection was kept")
        let now = try await read(newer, flags: Int32(MSG_DONTWAIT))
        #expect(now.0 < 0 && now.1 == EAGAIN, "the newer one was closed too")
        // The newer one says nothing: closed at the 20 s head timeout (long enough that a loaded machine gets
        // through the steps above first), so recv sees the end within its own 60 s receive timeout, long before
        // the 300 s request deadline.
        #expect(try await read(newer).0 == 0)
    }

    @Test("The metrics parse with prometheus_client and say what the state says")
    func metrics() throws {
        let metrics = DaemonMetrics()
        var snapshot = DaemonState.Snapshot(host: Host(Self.configuration()))
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
        var snapshot = DaemonState.Snapshot(host: Host(Self.configuration()))
        // The age is counted from the switch, not taken from the status read earlier.
        snapshot.rotation = RotationStatus(phase: "idle", lastRotation: -3700, currentAgeSeconds: 16)
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
