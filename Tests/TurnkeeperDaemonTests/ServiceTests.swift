import Glibc
import Logging
import ServiceLifecycle
import ServiceLifecycleTestKit
import TestSupport
import Testing
import TurnkeeperConfiguration
import TurnkeeperRotation
import UnixSignals

@testable import TurnkeeperDaemon

/// The daemon's services in process, under swift-service-lifecycle's test kit: a graceful shutdown is
/// triggered by hand, and each test waits for what the service did, never for time to pass.
@Suite("Daemon services in process", .mayBlock)
struct ServiceTests {
    static let logger = Logger(label: "turnkeeper.test")

    @Test("On a graceful shutdown, STOPPING goes to systemd at once and the state says stopping")
    func shutdownAnnouncer() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let socket = try NotifySocket(in: directory)
        defer { socket.close() }
        let state = DaemonState(
            host: Host(HealthAndMetricsTests.configuration()),
            notifier: SystemdNotifier(environment: ["NOTIFY_SOCKET": socket.path]))
        try await testGracefulShutdown { trigger in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await ShutdownAnnouncer(state: state, logger: Self.logger).run() }
                #expect(!state.current.stopping)
                trigger.triggerGracefulShutdown()
                try await group.waitForAll()
            }
        }
        #expect(state.current.stopping)
        _ = try await socket.wait(for: "STOPPING", "1", timeout: .seconds(60))
    }

    @Test("The watchdog pings until a graceful shutdown, then returns; without WATCHDOG_USEC it only waits")
    func watchdog() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let socket = try NotifySocket(in: directory)
        defer { socket.close() }
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": socket.path])
        try await testGracefulShutdown { trigger in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await WatchdogService(notifier: notifier, interval: .milliseconds(20)).run() }
                // Two pings: it keeps pinging, whatever the time between them.
                _ = try await socket.wait(for: "WATCHDOG", "1", count: 2, timeout: .seconds(60))
                trigger.triggerGracefulShutdown()
                try await group.waitForAll()
            }
        }
        try await testGracefulShutdown { trigger in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await WatchdogService(notifier: notifier, interval: nil).run() }
                trigger.triggerGracefulShutdown()
                try await group.waitForAll()
            }
        }
    }

    @Test(
        "SIGHUP: a configuration that loads replaces the running one and wakes the schedule; one that does not is kept")
    func reload() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        _ = try directory.write("homeserver.yaml", "server_name: example.org\n")
        let good = try TestConfiguration(
            synapse: .init(config: [directory.file("homeserver.yaml")]),
            coturn: .init(realm: "reloaded.example", verifyURI: "turn:127.0.0.1:9"),
            rotation: .init(stateDirectory: directory.file("state"))
        ).render()
        let path = try directory.write("turnkeeper.yaml", good)
        let state = DaemonState(
            host: Host(HealthAndMetricsTests.configuration()), notifier: SystemdNotifier(environment: [:]))
        let metrics = DaemonMetrics()
        let alarm = Alarm()
        // Trapped before it is raised: SIGHUP's default action would end the test process.
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        let service = ReloadService(
            path: path, hangups: hangups, state: state, metrics: metrics, logger: Self.logger, alarms: [alarm])
        try await testGracefulShutdown { trigger in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await service.run() }
                kill(getpid(), SIGHUP)
                try await Self.waitFor {
                    state.current.configuration.coturn.realm == "reloaded.example"
                        || metrics.render().contains("result=\"failed\"} 1")
                }
                #expect(state.current.configuration.coturn.realm == "reloaded.example", "\(metrics.render())")
                _ = try directory.write("turnkeeper.yaml", "coturn: [not a map\n")
                kill(getpid(), SIGHUP)
                try await Self.waitFor {
                    metrics.render().contains(#"turnkeeper_config_reloads_total{result="failed"} 1"#)
                }
                #expect(state.current.configuration.coturn.realm == "reloaded.example")
                trigger.triggerGracefulShutdown()
                try await group.waitForAll()
            }
        }
        #expect(metrics.render().contains(#"turnkeeper_config_reloads_total{result="ok"} 1"#), "\(metrics.render())")
    }

    /// Until `condition` holds; the deadline only guards against a hang.
    static func waitFor(_ condition: () -> Bool) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(60)
        while !condition() {
            guard clock.now < deadline else { throw TestFailure("the condition never held") }
            try await Task.sleep(for: .milliseconds(10))
        }
    }
}
