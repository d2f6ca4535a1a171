import TurnkeeperConfiguration
public import TurnkeeperCore
public import TurnkeeperCredentials
import TurnkeeperSwitching

/// One entry point for the CLI and the daemon, whatever the role: a single host rotating random secrets
/// (``SingleHostRotation``) or one of two hosts following derived epochs (``EpochRotation``). Get one with
/// ``Host/rotation(_:)``; the role is decided there and nowhere else.
public protocol SecretRotation: Sendable {
    /// How the daemon schedules it: on the rotation interval, or at each epoch's start.
    var schedule: RotationScheduleKind { get }
    /// Loads the state, or adopts the secret in use on a first run. The daemon calls it before it says it is ready.
    func prepare() async throws
    /// Phases, fingerprints and what is due when. Never a secret.
    func status() async throws -> RotationStatus
    /// Finishes what is in flight and retires what is due; `.rotate` then starts a new rotation (derived
    /// secrets: brings this host in line with the current epoch either way).
    func rotate(_ request: RotationRequest) async throws
    /// The secret Synapse signs with now, to mint probe credentials. Never printed.
    func currentSecret() async throws -> TurnSecret?
    /// Compares coturn's store with what turnkeeper's state says it must hold: the secrets still needed there,
    /// and none that turnkeeper retired. With `repair`, puts it right (taking the lock; `lockHeld` while a
    /// rotation runs, which reconciles by itself). nil where this host has no store or no state yet.
    func reconcile(repair: Bool) async throws -> Reconciliation?
}

public enum RotationRequest: Sendable {
    /// Finish a rotation in progress and retire what is due; start no new one.
    case resume
    /// As `resume`, then rotate once more.
    case rotate
}

public enum RotationScheduleKind: Sendable, Equatable {
    /// Random secrets, rotated every rotation.interval.
    case interval
    /// Derived secrets: act once per epoch, at its start on this host's clock.
    case epochs
}

/// What a rotation is given from outside: its clock, where it reports, when to stop, and who watches each step.
public struct RotationEnvironment: Sendable {
    /// Unix seconds, for every decision: due dates, retirements, epochs.
    public var now: @Sendable () -> Int64
    /// One line per step, for the terminal or the journal. Never handed a secret.
    public var say: @Sendable (String) -> Void
    /// Asked at each step boundary; true stops the rotation there with ``RotationStopped``.
    public var shouldStop: @Sendable () -> Bool
    /// Told of each saved step. What it throws ends the rotation at once, as a crash there would (tests inject
    /// crashes this way).
    public var observe: @Sendable (RotationEvent) async throws -> Void
    /// When a switch failed after Synapse was restarted, whether a retry restarts it again.
    public var synapseRestarts: SynapseRestartPolicy

    public init(
        now: @escaping @Sendable () -> Int64 = WallClock.nowSeconds,
        say: @escaping @Sendable (String) -> Void,
        shouldStop: @escaping @Sendable () -> Bool = { false },
        observe: @escaping @Sendable (RotationEvent) async throws -> Void = { _ in },
        synapseRestarts: SynapseRestartPolicy = .always
    ) {
        self.now = now
        self.say = say
        self.shouldStop = shouldStop
        self.observe = observe
        self.synapseRestarts = synapseRestarts
    }

    /// For reading only (`status`, probes): says nothing.
    public static var quiet: RotationEnvironment { RotationEnvironment(say: { _ in }) }

    /// What each consumer's switch is given of it.
    var switching: SwitchEnvironment {
        let observe = observe
        return SwitchEnvironment(
            now: now, say: say, restartsOnlyOnChange: synapseRestarts == .whenConfigurationChanged,
            restartDue: { try await observe(.synapseRestartDue) })
    }
}

/// A point a rotation has reached, its state saved. Between two events the state on disk is exactly what a
/// crash there would leave.
public enum RotationEvent: Sendable, Equatable, CustomStringConvertible {
    /// Step 0 (adoption) to 5 (retirement) is saved.
    case saved(step: Int)
    /// Step 4: Synapse's files are written; next the restart is recorded as tried and its command run.
    case synapseRestartDue
    /// Step 4: this consumer switched and that is saved; the next one (or the end of step 4) follows.
    case consumerSwitched(String)
    /// coturn's store had drifted from turnkeeper's state and was put right (``Reconciliation``).
    case storeRepaired(Reconciliation)

    public var description: String {
        switch self {
        case .saved(let step): "after step \(step)"
        case .synapseRestartDue: "between writing Synapse's files and restarting it"
        case .consumerSwitched(let name): "after switching \(name) in step 4"
        case .storeRepaired: "after repairing coturn's store"
        }
    }
}

public enum SynapseRestartPolicy: Sendable {
    /// Restart Synapse on every attempt of step 4 (an admin's `rotate --resume`).
    case always
    /// Restart again only once Synapse's configuration files have changed since the last restart: the daemon
    /// retries by itself and must not restart Synapse in a loop for one failure.
    case whenConfigurationChanged
}

/// A rotation stopped at a step boundary because the process is shutting down. Its state is saved; the next
/// `rotate` or `run` resumes it.
public struct RotationStopped: Error, Sendable {
    public let phase: String
}
