import Metrics
public import Prometheus
import Synchronization
import TurnkeeperAudit
import TurnkeeperConfiguration
import TurnkeeperProbe
import TurnkeeperRotation

/// The daemon's metrics, through swift-metrics into a Prometheus registry served at /metrics.
/// Names and meanings are listed in docs/operations.md; alert rules there rely on them.
public final class DaemonMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory
    /// Every (check, severity) an audit has reported: one that is gone is set to 0, not left at its count.
    private let auditLabels = Mutex<Set<[String]>>([])

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        self.factory = PrometheusMetricsFactory(registry: registry)
        // Every series exists from the start, so `increase()` and absence alerts see zeros, not gaps.
        for result in RotationResult.allCases { rotations(result).increment(by: 0) }
        for result in ["ok", "failed"] {
            Metrics.Counter(
                label: "turnkeeper_config_reloads_total", dimensions: [("result", result)], factory: factory
            ).increment(by: 0)
        }
        for store in ["coturn", "state"] { storeErrors(store).increment(by: 0) }
        for kind in ["restored", "removed"] { storeRepairs(kind).increment(by: 0) }
    }

    /// Secrets put right in coturn's store: `restored` (it had lost one turnkeeper still needs), `removed` (a
    /// rollback brought back one turnkeeper had retired).
    func storeRepairs(_ kind: String) -> Metrics.Counter {
        Metrics.Counter(label: "turnkeeper_store_repairs_total", dimensions: [("kind", kind)], factory: factory)
    }

    func storeRepaired(_ result: Reconciliation) {
        if !result.restored.isEmpty { storeRepairs("restored").increment(by: Int64(result.restored.count)) }
        if !result.removed.isEmpty { storeRepairs("removed").increment(by: Int64(result.removed.count)) }
    }

    func reconciled(at time: Int64) {
        gauge("turnkeeper_last_reconcile_timestamp_seconds").record(Double(time))
    }

    public enum RotationResult: String, CaseIterable, Sendable {
        /// A rotation or retirement run finished.
        case ok
        case failed
        /// Stopped at a step boundary by a shutdown; the next start resumes it.
        case stopped
    }

    func rotations(_ result: RotationResult) -> Metrics.Counter {
        Metrics.Counter(
            label: "turnkeeper_rotations_total", dimensions: [("result", result.rawValue)], factory: factory)
    }

    func configReload(ok: Bool) {
        Metrics.Counter(
            label: "turnkeeper_config_reloads_total", dimensions: [("result", ok ? "ok" : "failed")], factory: factory
        )
        .increment()
    }

    func storeErrors(_ store: String) -> Metrics.Counter {
        Metrics.Counter(label: "turnkeeper_store_errors_total", dimensions: [("store", store)], factory: factory)
    }

    func gauge(_ name: String, _ dimensions: [(String, String)] = []) -> Metrics.Gauge {
        Metrics.Gauge(label: name, dimensions: dimensions, factory: factory)
    }

    /// Sets the gauges that describe the rotation state.
    func record(state: DaemonState.Snapshot, now: Int64) {
        // Alert rules compare the secret's age with the interval, whatever the interval is configured to.
        gauge("turnkeeper_rotation_interval_seconds").record(Double(state.configuration.rotation.interval.seconds))
        if let last = state.rotation?.lastRotation {
            gauge("turnkeeper_last_rotation_timestamp_seconds").record(Double(last))
            gauge("turnkeeper_secret_age_seconds").record(Double(now - last))
        }
        if let next = state.rotation?.nextRotationDue {
            gauge("turnkeeper_next_rotation_timestamp_seconds").record(Double(next))
        }
        gauge("turnkeeper_retiring_secrets").record(Double(state.rotation?.retiring.count ?? 0))
        if let epoch = state.rotation?.epoch {
            gauge("turnkeeper_epoch").record(Double(epoch))
            // Synapse host: how many epochs behind Synapse signs (0 in step); none switched yet counts as 1.
            if state.host.managesSynapse {
                let lag = state.rotation?.synapseEpoch.map { epoch - $0 } ?? 1
                gauge("turnkeeper_synapse_epoch_lag").record(Double(max(0, lag)))
            }
        }
        gauge("turnkeeper_rotation_failures_in_a_row").record(Double(state.failures))
        for step in state.probeSteps {
            let labels = [("uri", step.uri), ("step", step.step)]
            gauge("turnkeeper_probe_success", labels).record(step.passed ? 1.0 : 0.0)
            gauge("turnkeeper_probe_duration_seconds", labels).record(step.seconds)
        }
        if let passed = state.probePassed {
            gauge("turnkeeper_probe_passed").record(passed ? 1.0 : 0.0)
        }
        if let at = state.lastProbe { gauge("turnkeeper_last_probe_timestamp_seconds").record(Double(at)) }
        if state.host.managesSynapse, state.lastProbe != nil {
            gauge("turnkeeper_consumer_drift", [("consumer", Configuration.synapseConsumer)]).record(
                state.synapseDrift == nil ? 0 : 1)
        }
    }

    /// The last audit: findings per check and severity.
    func record(audit findings: [AuditFinding], incomplete: Int, at time: Int64) {
        gauge("turnkeeper_audit_checks_incomplete").record(Double(incomplete))
        var counts: [[String]: Int] = [:]
        for finding in findings { counts[[finding.check.rawValue, finding.severity.rawValue], default: 0] += 1 }
        let labels = auditLabels.withLock { seen in
            seen.formUnion(counts.keys)
            return seen
        }
        for label in labels {
            gauge("turnkeeper_audit_findings", [("check", label[0]), ("severity", label[1])])
                .record(Double(counts[label] ?? 0))
        }
        gauge("turnkeeper_last_audit_timestamp_seconds").record(Double(time))
    }

    /// coturn's store, read at scrape time: how many secrets it accepts, or an error.
    func record(coturnSecrets count: Int?) {
        if let count {
            gauge("turnkeeper_coturn_accepted_secrets").record(Double(count))
            gauge("turnkeeper_store_up", [("store", "coturn")]).record(1.0)
        } else {
            storeErrors("coturn").increment()
            gauge("turnkeeper_store_up", [("store", "coturn")]).record(0.0)
        }
    }

    public func render() -> String { registry.emitToString() }
}
