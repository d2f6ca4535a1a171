import ArgumentParser
import FoundationEssentials
import TurnkeeperDaemon

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run as a service: rotate on schedule, probe TURN, serve health and metrics.",
        discussion: """
            Meant for systemd (systemd/turnkeeper.service, Type=notify). It rotates when rotation.interval \
            has passed since the last switch, retires old secrets when they are due, finishes a rotation left \
            half-way, and retries failures with capped backoff (daemon.retry_initial up to daemon.retry_max). \
            It probes daemon.probe_uris (default: Synapse's turn_uris) every daemon.probe_interval.

            HTTP on daemon.listen (default 127.0.0.1:9478): /healthz (alive), /readyz (state consistent and \
            the last probe passed), /metrics (Prometheus).

            Signals: SIGTERM or SIGINT stop it after any rotation step in flight; SIGHUP re-reads the \
            configuration and keeps the running one if the new one does not load.
            See docs/operations.md.

            Exit status: 0 stopped cleanly, 1 a check failed at start, 2 configuration error.
            """
    )

    @OptionGroup var options: ConfigurationOptions

    func run() async throws {
        try await Daemon(configurationPath: options.path, environment: ProcessInfo.processInfo.environment).run()
    }
}
