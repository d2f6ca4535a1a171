import Foundation
import Glibc
import TurnkeeperCore
import TurnkeeperCredentials

/// What a rotation has done so far, persisted after every step (state.json, mode 0600, replaced
/// atomically). It holds secret values, so it is never printed: ``RotationStatus`` shows fingerprints.
struct RotationState: Codable {
    enum Phase: String, Codable {
        /// Nothing in flight.
        case idle
        /// `pending` is generated and saved; it is being added to coturn.
        case adding
        /// coturn has `pending`; an allocation with it is being tried.
        case verifying
        /// coturn accepts `pending`; Synapse is being switched to it.
        case switching
    }

    struct SynapseRestart: Codable, Equatable {
        /// The fingerprint of the secret Synapse was switched to.
        var secret: String
        var configurationDigest: String
        var at: Int64
        /// The restart command exited 0.
        var succeeded: Bool
    }

    struct Retiree: Codable {
        var value: String
        /// Unix seconds after which no credential Synapse handed out with it is still valid.
        var after: Int64
        /// Why the last attempt to retire it failed (coturn still accepts it, or did not answer); it is retried.
        var failed: String?
    }

    var phase: Phase = .idle
    /// The secret Synapse uses.
    var current: String?
    /// The secret being introduced.
    var pending: String?
    /// Old secrets coturn still accepts, and when each may go.
    var retiring: [Retiree] = []
    /// Unix seconds of the last switch of Synapse.
    var lastRotation: Int64?
    /// The last time Synapse was restarted for `pending`, and the digest of its configuration then: an automatic
    /// retry never restarts Synapse again for the same failure unless its configuration has changed since.
    var synapseRestart: SynapseRestart?
    var lastResult: String?

    static func load(_ path: String) throws(TurnkeeperError) -> RotationState? {
        // Only a missing file means "no rotation yet"; any other read failure must stop us, or a rotation
        // would adopt afresh and forget the secrets still waiting to be retired.
        guard access(path, F_OK) == 0 else { return nil }
        let name = TrustedDirectory.split(path).name
        // Through the checked directory, refusing a link or a file another user placed.
        guard let file = try TrustedDirectory(containing: path).read(name) else { return nil }
        do {
            return try JSONDecoder().decode(RotationState.self, from: Data(file.bytes))
        } catch {
            // Not the decoder's message: it may quote the file, which holds secrets.
            throw TurnkeeperError(
                .unreadableFile,
                "\(path) is not a turnkeeper state file; nothing was changed. Restore it from a backup, or "
                    + "move it away to adopt the current setup afresh."
            )
        }
    }

    func save(_ path: String) throws(TurnkeeperError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        let bytes: [UInt8]
        do {
            bytes = Array(try encoder.encode(self))
        } catch {
            throw TurnkeeperError(.unwritableFile, "cannot encode the rotation state: \(error)")
        }
        try AtomicFile.write(bytes, to: path, permissions: 0o600, maximumPermissions: 0o600, existing: .replace)
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
        lastResult: String? = nil
    ) {
        self.phase = phase
        self.current = current
        self.pending = pending
        self.retiring = retiring
        self.lastRotation = lastRotation
        self.currentAgeSeconds = currentAgeSeconds
        self.nextRotationDue = nextRotationDue
        self.lastResult = lastResult
    }
}
