import Logging
import ServiceLifecycle
import TurnkeeperAudit
import TurnkeeperCore
import TurnkeeperProbe
import TurnkeeperTURNClient

/// Audits the TURN URIs the probe uses every daemon.audit_interval (a day by default), with credentials minted
/// from the current secret: `turnkeeper audit` without a reflector. Findings go to the journal and to
/// `turnkeeper_audit_findings{check,severity}`.
struct AuditService: Service {
    let state: DaemonState
    let metrics: DaemonMetrics
    let logger: Logger
    let alarm: Alarm

    /// The first audit waits for the interval, ten minutes at most: a daemon that starts (or restarts) is
    /// busy with its first rotation and probe, and the audit's quota check briefly holds relay ports.
    static let firstDelay: Int64 = 600

    func run() async {
        await cancelWhenGracefulShutdown {
            await alarm.sleep(
                for: .seconds(min(state.configuration.daemon.auditInterval.seconds, Self.firstDelay)))
            while !Task.isCancelled {
                await auditOnce()
                await alarm.sleep(for: .seconds(state.configuration.daemon.auditInterval.seconds))
            }
        }
    }

    func auditOnce() async {
        let host = state.host
        let configuration = host.configuration
        let now = WallClock.nowSeconds()
        let uris = await ProbeService.uris(configuration).compactMap { try? TURNURI($0) }
            .filter { $0.scheme == .turn || $0.scheme == .turns }
        let (credentials, _, problem) = await ProbeService.credentials(host, synapse: nil, now: now)
        if let problem { logger.warning("audit: \(problem)") }
        let report = await AuditRunner.run(
            uris,
            options: AuditOptions(
                credentials: credentials, tls: TLSOptions(caFile: configuration.daemon.probeCAFile),
                checkQuotas: false, nowSeconds: now))
        state.update {
            $0.auditFindings = report.findings
            $0.lastAudit = now
        }
        let incomplete = report.targets.flatMap(\.checks).filter { $0.result == .error }.count
        metrics.record(audit: report.findings, incomplete: incomplete, at: now)
        for finding in report.findings {
            let line =
                "audit: [\(finding.severity.rawValue)] \(finding.check) at \(finding.target): \(finding.problem) "
                + "Fix: \(finding.fix)"
            logger.error("\(line)")
        }
        let errors = report.targets.flatMap(\.checks).filter { $0.result == .error }
        for check in errors { logger.warning("audit: \(check.check) could not conclude: \(check.detail)") }
        if report.findings.isEmpty && errors.isEmpty {
            logger.info("audit: no findings (\(uris.map(\.text).joined(separator: ", ")))")
        }
    }
}
