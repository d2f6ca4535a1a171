import Logging
import ServiceLifecycle
import TurnkeeperConfiguration
import TurnkeeperCore
import TurnkeeperExecution
import TurnkeeperRotation
import UnixSignals

/// Pings systemd's watchdog at half of WATCHDOG_USEC from the same task pool the services run on, so a
/// wedged pool stops the pings and systemd restarts us. Shut down last, so pings go on while a rotation
/// step finishes.
struct WatchdogService: Service {
    let notifier: SystemdNotifier
    let interval: Duration?

    func run() async throws {
        guard let interval else {
            try? await gracefulShutdown()
            return
        }
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                notifier.watchdog()
                try await Pause.for(interval)
            }
        }
    }
}

/// The first service told about a shutdown (it is listed last): says STOPPING=1 at once, before the
/// rotation service finishes its step.
struct ShutdownAnnouncer: Service {
    let state: DaemonState
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        logger.notice("shutting down: a rotation step in flight finishes first")
        state.update { $0.stopping = true }
        state.notifier.stopping(status: "stopping: finishing any rotation step in flight")
    }
}

/// SIGHUP: re-read turnkeeper.yaml. A configuration that does not load is reported and the running one kept.
struct ReloadService: Service {
    let path: String
    /// Trapped when the daemon started, so that none is lost before this service runs.
    let hangups: UnixSignalsSequence
    let state: DaemonState
    let metrics: DaemonMetrics
    let logger: Logger
    /// Woken so the schedule and the probe follow the new configuration at once.
    let alarms: [Alarm]
    /// The host a configuration that loads describes (the daemon's, so tests may give their own parts).
    var makeHost: @Sendable (Configuration) -> Host = { Host($0) }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            for await _ in hangups { await reload() }
        }
    }

    func reload() async {
        state.notifier.reloading()
        defer { state.notifier.reloaded() }
        let running = state.configuration
        let loaded: Configuration
        do {
            let path = path
            // Off the cooperative pool: however long a file takes to read, health checks and SIGTERM go on.
            loaded = try await Blocking.run { try Configuration.load(path) }
        } catch {
            metrics.configReload(ok: false)
            logger.error(
                "SIGHUP: kept the running configuration, because the new one does not load: \(describe(error))")
            return
        }
        if loaded.daemon.listenHost != running.daemon.listenHost
            || loaded.daemon.listenPort != running.daemon.listenPort
        {
            logger.warning("SIGHUP: daemon.listen changed; the listener moves only on a restart of turnkeeper")
        }
        // A reload is how an admin says "fixed, try again": a failing rotation is retried now, not after its
        // backoff (its next failure starts the backoff afresh).
        let retrying = state.current.failures > 0
        state.update {
            $0.host = makeHost(loaded)
            if retrying { $0.lastFailure = nil }
        }
        metrics.configReload(ok: true)
        logger.notice("SIGHUP: reloaded \(path)\(retrying ? "; the failing rotation is retried now" : "")")
        for alarm in alarms { alarm.wake() }
    }
}
