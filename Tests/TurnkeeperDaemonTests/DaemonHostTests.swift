import Foundation
import Logging
import ServiceLifecycleTestKit
import TestSupport
import Testing
import TurnkeeperConfiguration
import TurnkeeperCredentials
import TurnkeeperRotation
import TurnkeeperSynapse

@testable import TurnkeeperDaemon

/// The daemon's rotation and reconciliation services in process, on a `Host` built from in-memory parts: coturn's
/// store in memory, a probe that judges credentials as coturn does, real Synapse files, and a clock that moves only
/// when the test moves it. Each step waits for what the services did, never for time to pass.
@Suite("The daemon on an injected host, in process", .mayBlock)
struct DaemonHostTests {
    @Test(
        "Rotates when due, retires when due, and puts back a secret the store lost; stops at a graceful shutdown",
        .timeLimit(.minutes(2)))
    func rotatesRetiresRepairs() async throws {
        let lab = try Lab()
        defer { lab.directory.remove() }
        let (host, store, clock, initial) = (lab.host, lab.store, lab.clock, lab.initial)
        func signs() throws -> TurnSecret? { try SynapseConfig.load(lab.paths).turnSecret }

        // As `Daemon.run` does before it says it is ready: a first run adopts what Synapse signs with.
        try await host.rotation(.init(now: { clock.now() }, say: { _ in })).prepare()
        let state = DaemonState(host: host, notifier: SystemdNotifier(environment: [:]))
        let metrics = DaemonMetrics()
        let logger = Logger(label: "turnkeeper.test")
        let rotationAlarm = Alarm()
        let reconcileAlarm = Alarm()
        let gate = StateGate()
        let rotation = RotationService(
            state: state, metrics: metrics, logger: logger, alarm: rotationAlarm, probeAlarm: Alarm(), gate: gate,
            now: { clock.now() })
        let reconcile = ReconcileService(
            state: state, metrics: metrics, logger: logger, alarm: reconcileAlarm, probeAlarm: Alarm(), gate: gate)

        try await testGracefulShutdown { trigger in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await rotation.run() }
                group.addTask { await reconcile.run() }
                // Whatever happens below, the services are asked to stop and awaited.
                defer { trigger.triggerGracefulShutdown() }
                // A first run adopts what Synapse signs with, and rotates at once: a new secret in coturn beside
                // the old, and in Synapse's files.
                try await ServiceTests.waitFor {
                    let now = state.current
                    return now.firstRoundDone && !now.rotating && now.rotation?.current != initial.fingerprint
                }
                let new = try #require(try signs())
                #expect(new != initial && new.fingerprint == state.current.rotation?.current)
                #expect(
                    store.holds.count == 2 && store.holds.contains(initial) && store.holds.contains(new),
                    "the old secret stays until its credentials expire")
                #expect(metrics.render().contains(#"turnkeeper_rotations_total{result="ok"} 1"#))

                // The store loses the new secret (a restored backup): the reconciliation puts it back.
                try await store.remove(new)
                reconcileAlarm.wake()
                try await ServiceTests.waitFor { store.holds.contains(new) }
                #expect(metrics.render().contains("turnkeeper_store_repairs_total"), "\(metrics.render())")

                // After turn_user_lifetime (1 h) and the margin (60 s), well before the next rotation (24 h): the
                // old secret is retired, proven refused, and nothing else changes.
                clock.advance(by: 3600 + 60 + 1)
                rotationAlarm.wake()
                try await ServiceTests.waitFor { store.holds == [new] && !state.current.rotating }
                #expect(try signs() == new)
                #expect(state.current.rotation?.current == new.fingerprint)

                // A day on: the next rotation.
                clock.advance(by: 86_400)
                rotationAlarm.wake()
                try await ServiceTests.waitFor {
                    !state.current.rotating && state.current.rotation?.current != new.fingerprint
                }
                #expect(try signs() != new && store.holds.contains(new) && store.holds.count == 2)
                #expect(metrics.render().contains(#"turnkeeper_rotations_total{result="ok"} 3"#), "\(metrics.render())")
                #expect(state.current.failures == 0, "\(state.current.lastError ?? "")")
            }
        }
    }

    @Test(
        "Cancelled without a graceful shutdown, the rotation service returns instead of spinning",
        .timeLimit(.minutes(2)))
    func cancelled() async throws {
        let lab = try Lab()
        defer { lab.directory.remove() }
        let state = DaemonState(host: lab.host, notifier: SystemdNotifier(environment: [:]))
        let service = RotationService(
            state: state, metrics: DaemonMetrics(), logger: Logger(label: "turnkeeper.test"), alarm: Alarm(),
            probeAlarm: Alarm(), now: { lab.clock.now() })
        let running = Task { await service.run() }
        try await ServiceTests.waitFor { state.current.firstRoundDone && !state.current.rotating }
        running.cancel()
        // Before the fix, every sleep returned at once once cancelled and the loop never ended.
        await running.value
        #expect(state.current.failures == 0, "\(state.current.lastError ?? "")")
    }

    @Test(
        "Daemon.run in process on an injected host: ready, serves /metrics with the first rotation, ends when cancelled",
        .timeLimit(.minutes(2)))
    func daemonRun() async throws {
        let lab = try Lab()
        defer { lab.directory.remove() }
        var configuration = lab.host.configuration
        let port = Int(try LoopbackUDP.freePort())
        configuration.daemon.listenHost = "127.0.0.1"
        configuration.daemon.listenPort = port
        // Nothing to probe on the network: the probe asks a port nothing listens on, and fails (which /readyz says).
        configuration.daemon.probeURIs = ["turn:127.0.0.1:9"]
        let path = try lab.directory.write("turnkeeper.yaml", configuration.rendered())
        let store = lab.store
        // The daemon mints with the wall clock: the probe judges expiry by it too.
        lab.clock.set(to: Int64(Date().timeIntervalSince1970))
        let probe = MemoryProbe(store: store, clock: lab.clock)
        let daemon = Daemon(configurationPath: path, environment: [:]) {
            TurnkeeperRotation.Host($0, coturnStore: store, probe: probe)
        }
        let running = Task { try await daemon.run() }
        func metrics() async -> String {
            (try? await Task.detached { try HTTPGet.get(port: port, path: "/metrics", timeoutSeconds: 5) }.value)?
                .body ?? ""
        }
        // The first round adopts Synapse's secret and rotates at once, through the in-memory store.
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(60)
        var seen = await metrics()
        while !seen.contains(#"turnkeeper_rotations_total{result="ok"} 1"#) && clock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
            seen = await metrics()
        }
        #expect(seen.contains(#"turnkeeper_rotations_total{result="ok"} 1"#), "\(seen)")
        #expect(store.holds.count == 2 && store.holds.contains(lab.initial), "the new secret beside the old")
        let health = try await Task.detached { try HTTPGet.get(port: port, path: "/healthz") }.value
        #expect(health.status == 200)
        running.cancel()
        // Every service ends on cancellation (the rotation service once spun here instead).
        do {
            try await running.value
        } catch is CancellationError {
        } catch {
            Issue.record("the daemon ended with \(error)")
        }
    }

    /// A single host: Synapse's files with a secret coturn's in-memory store accepts, a day's rotation interval.
    struct Lab {
        let directory: TemporaryDirectory
        let paths: [String]
        let initial: TurnSecret
        let store = MemoryStore()
        let clock = ManualClock()
        let host: TurnkeeperRotation.Host

        init() throws {
            directory = try TemporaryDirectory("daemon-host")
            try FileManager.default.createDirectory(
                atPath: directory.file("synapse/conf.d"), withIntermediateDirectories: true)
            initial = try TurnSecret.generate()
            let text = initial.withExposedBytes { String(decoding: $0, as: UTF8.self) }
            let homeserver = try directory.write(
                "synapse/homeserver.yaml",
                "server_name: daemon.test\nturn_shared_secret: \"\(text)\"\nturn_user_lifetime: 1h\n"
                    + "turn_uris: [\"turn:memory.test\"]\n", mode: 0o640)
            paths = [homeserver, directory.file("synapse/conf.d")]
            let configuration = Configuration(
                synapse: .init(
                    configPaths: paths, managedFile: directory.file("synapse/conf.d/90-turnkeeper.yaml"),
                    group: "nogroup", restartCommand: ["/bin/true"]),
                coturn: .init(realm: "daemon.test", verifyURI: "turn:memory.test"),
                rotation: .init(interval: .hours(24), margin: .seconds(60), stateDirectory: directory.file("state")),
                path: directory.file("turnkeeper.yaml"))
            store.holdsInitially(initial)
            host = TurnkeeperRotation.Host(
                configuration, coturnStore: store, probe: MemoryProbe(store: store, clock: clock))
        }
    }
}
