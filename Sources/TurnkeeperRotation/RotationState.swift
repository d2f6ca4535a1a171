import TurnkeeperConfiguration
import TurnkeeperCredentials
import TurnkeeperSwitching

/// What a rotation has done so far, persisted after every step (state.json, mode 0600, replaced
/// atomically). It holds secret values, so it is never printed: ``RotationStatus`` shows fingerprints.
struct RotationState: Codable, Sendable {
    enum Phase: String, Codable, Sendable {
        /// Nothing in flight.
        case idle
        /// `pending` is generated and saved; it is being added to coturn.
        case adding
        /// coturn has `pending`; an allocation with it is being tried.
        case verifying
        /// coturn accepts `pending`; Synapse is being switched to it.
        case switching
    }

    struct Retiree: Codable, Sendable {
        var value: TurnSecret
        /// Unix seconds after which no credential Synapse handed out with it is still valid.
        var after: Int64
        /// Why the last attempt to retire it failed (coturn still accepts it, or did not answer); it is retried.
        var failed: String?
        /// Why it was not taken out of coturn when due: a consumer still signs with it (or whether one does could
        /// not be told). It stays in coturn's store, and its retirement is tried again.
        var kept: String?
    }

    var phase: Phase = .idle
    /// The secret Synapse uses.
    var current: TurnSecret?
    /// The secret being introduced.
    var pending: TurnSecret?
    /// Old secrets coturn still accepts, and when each may go.
    var retiring: [Retiree] = []
    /// Unix seconds of the last switch of Synapse.
    var lastRotation: Int64?
    /// The last time Synapse was restarted for `pending`, and the digest of its configuration then: an automatic
    /// retry never restarts Synapse again for the same failure unless its configuration has changed since.
    var synapseRestart: RestartRecord?
    /// Step 4: the consumers (by name) already switched to `pending`; a resumed step 4 goes on with the rest.
    var switched: [String]?
    /// Step 4: the last restart command of each consumer besides Synapse, as `synapseRestart`.
    var consumerRestarts: [String: RestartRecord]?
    /// Step 4: the longest credential lifetime, in seconds, among the consumers switched so far.
    var longestLifetime: Int64?
    /// The consumers known to sign with `current`: those switched to it, and those brought onto it since
    /// (listed later, or at adoption). A configured consumer missing here is brought onto it on the next run.
    var members: [String]?
    /// Members seen signing with another secret than `current` since they were switched (their files changed
    /// behind turnkeeper's back). Each is switched again, restart included, once its files let it: the running
    /// app may have read the other secret.
    var drifted: [String]?
    /// The secrets retired from coturn, by digest: a store rolled back to before a retirement is put right.
    var retired: [RetiredSecret]?
    var lastResult: String?

    /// What coturn's store must hold: the current secret, a pending one from step 2 on, and the retiring ones
    /// (but not one whose retirement began: it left the store, and only its proof is missing).
    var neededInStore: [TurnSecret] {
        var needed = [current].compactMap { $0 } + retiring.filter { $0.failed == nil || $0.kept != nil }.map(\.value)
        if let pending, phase == .verifying || phase == .switching { needed.append(pending) }
        return needed
    }

    /// The restart recorded for the consumer `name`.
    func restart(of name: String) -> RestartRecord? {
        name == Configuration.synapseConsumer ? synapseRestart : consumerRestarts?[name]
    }

    mutating func setRestart(_ restart: RestartRecord?, of name: String) {
        if name == Configuration.synapseConsumer {
            synapseRestart = restart
        } else {
            var restarts = consumerRestarts ?? [:]
            restarts[name] = restart
            consumerRestarts = restarts.isEmpty ? nil : restarts
        }
    }
}

/// What `turnkeeper status` shows: phases, times and fingerprints, never a secret.
public struct RotationStatus: Sendable, Codable {
    public var phase: String
    public var current: String?
    public var pending: String?
    public var retiring: [RetiringSecret]
    public var lastRotation: Int64?
    /// Seconds since Synapse switched to the current secret.
    public var currentAgeSeconds: Int64?
    public var nextRotationDue: Int64?
    public var lastResult: String?
    /// Derived secrets: the epoch now, on this host's clock.
    public var epoch: Int64?
    /// Derived secrets, Synapse host: the epoch Synapse was last switched to (behind `epoch`: it lags).
    public var synapseEpoch: Int64?

    public struct RetiringSecret: Sendable, Codable {
        public var fingerprint: String
        public var retiresAt: Int64
        /// Why the last attempt to retire it failed: coturn still accepts it (and where from), or did not answer.
        public var failed: String?

        public init(fingerprint: String, retiresAt: Int64, failed: String? = nil) {
            self.fingerprint = fingerprint
            self.retiresAt = retiresAt
            self.failed = failed
        }
    }

    public init(
        phase: String,
        current: String? = nil,
        pending: String? = nil,
        retiring: [RetiringSecret] = [],
        lastRotation: Int64? = nil,
        currentAgeSeconds: Int64? = nil,
        nextRotationDue: Int64? = nil,
        lastResult: String? = nil,
        epoch: Int64? = nil,
        synapseEpoch: Int64? = nil
    ) {
        self.synapseEpoch = synapseEpoch
        self.phase = phase
        self.current = current
        self.pending = pending
        self.retiring = retiring
        self.lastRotation = lastRotation
        self.currentAgeSeconds = currentAgeSeconds
        self.nextRotationDue = nextRotationDue
        self.lastResult = lastResult
        self.epoch = epoch
    }
}
