import Synchronization
public import TurnkeeperAudit
public import TurnkeeperConfiguration
import TurnkeeperCore
public import TurnkeeperRotation

/// What the daemon knows right now, shared by its services: the host (and so the configuration) in force, the
/// rotation's progress and the last probe. Every change refreshes systemd's STATUS line.
public final class DaemonState: Sendable {
    public struct ProbeStep: Sendable, Equatable {
        public var uri: String
        public var step: String
        public var passed: Bool
        /// The step's duration: for binding, the round trip.
        public var seconds: Double
    }

    public struct Snapshot: Sendable {
        /// Built from the configuration in force; replaced on each reload.
        public var host: Host
        public var configuration: Configuration { host.configuration }
        /// The last state read from state.json.
        public var rotation: RotationStatus?
        /// When the rotation service acts next (Unix seconds).
        public var nextAction: Int64?
        public var rotating = false
        /// The rotation service finished its first round (or found nothing due): until then a probe could meet a
        /// restart turnkeeper itself caused (coturn with `store: config`, Synapse).
        public var firstRoundDone = false
        /// Failed attempts in a row, the last one's time and why.
        public var failures = 0
        public var lastFailure: Int64?
        public var lastError: String?
        /// Per URI and step, worst over the URI's addresses.
        public var probeSteps: [ProbeStep] = []
        public var probePassed: Bool?
        public var probeProblems: [String] = []
        public var lastProbe: Int64?
        /// Why Synapse's configuration does not give it turnkeeper's current secret, as the last probe read it.
        public var synapseDrift: String?
        /// The last audit's findings, and when it ran.
        public var auditFindings: [AuditFinding]?
        public var lastAudit: Int64?
        public var stopping = false
    }

    private let snapshot: Mutex<Snapshot>
    let notifier: SystemdNotifier

    public init(host: Host, notifier: SystemdNotifier) {
        self.snapshot = Mutex(Snapshot(host: host))
        self.notifier = notifier
    }

    public var current: Snapshot { snapshot.withLock { $0 } }

    public var host: Host { snapshot.withLock { $0.host } }

    public var configuration: Configuration { host.configuration }

    public func update(_ change: (inout Snapshot) -> Void) {
        let line = snapshot.withLock { state -> String in
            change(&state)
            return Self.statusLine(state, now: WallClock.nowSeconds())
        }
        notifier.status(line)
    }

    /// /readyz: the state is consistent (no rotation failing, nothing stuck half-way) and the last probe passed.
    public func readiness() -> (ready: Bool, reasons: [String]) {
        let state = current
        var reasons: [String] = []
        if state.rotation == nil { reasons.append("the rotation state is not loaded yet") }
        if let error = state.lastError, state.failures > 0 {
            reasons.append("the last \(state.failures) rotation attempt(s) failed: \(error)")
        }
        switch state.probePassed {
        case nil: reasons.append("no probe has finished yet")
        case false?: reasons.append("the last probe failed: " + state.probeProblems.joined(separator: "; "))
        case true?: break
        }
        return (reasons.isEmpty, reasons)
    }

    /// One line a person reads in `systemctl status`.
    static func statusLine(_ state: Snapshot, now: Int64) -> String {
        var parts: [String] = []
        if state.stopping {
            parts.append("stopping")
        } else if state.rotating {
            parts.append("rotating (phase \(state.rotation?.phase ?? "?"))")
        } else if state.failures > 0, let error = state.lastError {
            parts.append("rotation failing (\(state.failures)×): \(error.prefix(120))")
        } else {
            parts.append("idle")
        }
        if let next = state.nextAction, !state.rotating {
            parts.append("next rotation step \(WallClock.utcString(seconds: next))")
        }
        // From the switch's time, not the age saved with the status, which is as old as the last read.
        if let last = state.rotation?.lastRotation {
            parts.append("secret age \(WallClock.spanString(seconds: max(0, now - last)))")
        }
        if let passed = state.probePassed, let at = state.lastProbe {
            let total = Set(state.probeSteps.map(\.uri)).count
            let failing = Set(state.probeSteps.filter { !$0.passed }.map(\.uri)).count
            parts.append(
                passed
                    ? "probe ok (\(total) URI\(total == 1 ? "" : "s")) at \(WallClock.utcString(seconds: at))"
                    : "probe FAILING on \(failing) of \(total) URIs at \(WallClock.utcString(seconds: at))")
        }
        return parts.joined(separator: "; ")
    }
}
