import Glibc
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import TurnkeeperCallTest
import TurnkeeperConfiguration
import TurnkeeperCore
import TurnkeeperExecution
import TurnkeeperRotation
import TurnkeeperTURNClient
import UnixSignals

/// `turnkeeper run`: loads the configuration and the rotation state, opens the health listener, tells
/// systemd it is ready, and runs the services until SIGTERM. See docs/operations.md.

public struct Daemon {
    public let configurationPath: String
    public let environment: [String: String]
    /// The host each loaded configuration describes: built once at start and again on each SIGHUP.
    let makeHost: @Sendable (Configuration) -> Host

    public init(configurationPath: String, environment: [String: String]) {
        self.init(configurationPath: configurationPath, environment: environment, makeHost: { Host($0) })
    }

    init(
        configurationPath: String, environment: [String: String], makeHost: @escaping @Sendable (Configuration) -> Host
    ) {
        self.configurationPath = configurationPath
        self.environment = environment
        self.makeHost = makeHost
    }

    public func run() async throws {
        // Trapped first thing: SIGHUP's default action would kill us. One that comes while the configuration
        // and state load waits in the sequence, and the reload service reloads for it once it runs.
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        let format = JournalLogHandler.format(environment: environment)
        let logger = Logger(label: "turnkeeper") { _ in JournalLogHandler(format: format) }
        var quiet = Logger(label: "turnkeeper.lifecycle") { _ in JournalLogHandler(format: format) }
        quiet.logLevel = .warning

        let path = configurationPath
        let configuration = try await Blocking.run { try Configuration.load(path) }
        let notifier = SystemdNotifier(environment: environment)
        let host = makeHost(configuration)
        let state = DaemonState(host: host, notifier: notifier)
        let metrics = DaemonMetrics()

        // Ready means the state is loaded and consistent: read, or adopted from Synapse on a first run; with
        // derived secrets, the root key reads and this epoch's secret derives.
        let rotation = host.rotation(RotationEnvironment(now: WallClock.nowSeconds, say: { logger.info("\($0)") }))
        try await rotation.prepare()
        let status = try await rotation.status()
        state.update { $0.rotation = status }

        let server = try await HealthServer.bind(
            host: configuration.daemon.listenHost, port: configuration.daemon.listenPort
        ) { path in
            await Self.route(path, state: state, metrics: metrics)
        }
        let page = configuration.daemon.calltestHomeserver == nil ? "" : " and the call test page at /calltest/"
        logger.info("serving /healthz, /readyz and /metrics\(page) on http://\(server.address.hostAndPort)")
        if configuration.daemon.calltestHomeserver != nil && !Configuration.isLoopback(configuration.daemon.listenHost)
        {
            let warning =
                "the call test page asks for Matrix passwords, and daemon.listen is not loopback: it is served over "
                + "plain http there. Keep daemon.listen on 127.0.0.1 and publish /calltest/ alone through the "
                + "homeserver's web server over https (docs/calltest.md)."
            logger.warning("\(warning)")
        }

        let rotationAlarm = Alarm()
        let probeAlarm = Alarm()
        let reconcileAlarm = Alarm()
        let auditAlarm = Alarm()
        let gate = StateGate()
        let services: [any Service] = [
            server,
            WatchdogService(notifier: notifier, interval: SystemdNotifier.watchdogInterval(environment: environment)),
            ReloadService(
                path: configurationPath, hangups: hangups, state: state, metrics: metrics, logger: logger,
                alarms: [rotationAlarm, probeAlarm, reconcileAlarm, auditAlarm], makeHost: makeHost),
            ProbeService(state: state, metrics: metrics, logger: logger, alarm: probeAlarm),
            AuditService(state: state, metrics: metrics, logger: logger, alarm: auditAlarm),
            ReconcileService(
                state: state, metrics: metrics, logger: logger, alarm: reconcileAlarm, probeAlarm: probeAlarm,
                gate: gate),
            RotationService(
                state: state, metrics: metrics, logger: logger, alarm: rotationAlarm, probeAlarm: probeAlarm,
                gate: gate, now: WallClock.nowSeconds),
            ShutdownAnnouncer(state: state, logger: logger),
        ]
        let group = ServiceGroup(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: quiet)
        notifier.ready(status: "state loaded; first schedule and probe starting")
        logger.info(
            "ready: rotating every \(configuration.rotation.interval.seconds) s, probing every \(configuration.daemon.probeInterval.seconds) s"
        )
        try await group.run()
        logger.info("stopped")
    }

    private static let storeCount = StoreCountCache()

    static func route(_ path: String, state: DaemonState, metrics: DaemonMetrics) async -> HealthServer.Response {
        switch path {
        case "/healthz":
            return .init(status: .ok, body: "ok\n")
        case "/readyz":
            let (ready, reasons) = state.readiness()
            return ready
                ? .init(status: .ok, body: "ready\n")
                : .init(status: .serviceUnavailable, body: "not ready:\n" + reasons.map { "- \($0)\n" }.joined())
        case "/metrics":
            let snapshot = state.current
            metrics.record(state: snapshot, now: WallClock.nowSeconds())
            // The Synapse host of a two-host setup has no coturn store to count.
            let host = snapshot.host
            if host.managesCoturn {
                let count = await storeCount.value(now: WallClock.nowSeconds()) {
                    try? await host.coturnSecretCount()
                }
                metrics.record(coturnSecrets: count)
            }
            return .init(status: .ok, contentType: "text/plain; version=0.0.4; charset=utf-8", body: metrics.render())
        case _ where path.hasPrefix("/calltest"):
            return callTest(path, homeserver: state.current.configuration.daemon.calltestHomeserver)
        default:
            return .init(status: .notFound, body: "not found; try /healthz, /readyz or /metrics\n")
        }
    }

    /// The call test page, only when daemon.calltest_homeserver is set; under a CSP that lets it talk to that
    /// homeserver alone.
    static func callTest(_ path: String, homeserver: HomeserverURL?) -> HealthServer.Response {
        guard let homeserver else {
            return .init(
                status: .notFound,
                body: "not found: the call test page is served only when daemon.calltest_homeserver is set "
                    + "(docs/calltest.md)\n")
        }
        if path == "/calltest" {
            return .init(status: .movedPermanently, body: "see /calltest/\n", headers: [("Location", "/calltest/")])
        }
        guard let file = CallTestPage.file(at: path, homeserver: homeserver.text) else {
            return .init(status: .notFound, body: "not found\n")
        }
        return .init(
            status: .ok, contentType: file.contentType, body: String(decoding: file.bytes, as: UTF8.self),
            headers: CallTestPage.headers(homeserverOrigin: homeserver.origin))
    }
}
