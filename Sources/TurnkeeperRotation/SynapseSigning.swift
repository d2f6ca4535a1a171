import TurnkeeperConfiguration
import TurnkeeperCore
public import TurnkeeperCredentials
import TurnkeeperSwitching

/// What Synapse signs with, read from its configuration as Synapse reads it (not from turnkeeper's state), and
/// whether that is the secret turnkeeper keeps it on. The daemon reads it on every probe: a file put back by a
/// backup or configuration management shows within one probe interval, with its file and line.
public struct SynapseSigning: Sendable {
    /// The secret Synapse's files give it; nil when they give none.
    public let secret: TurnSecret?
    /// "turn_shared_secret at FILE, line N".
    public let location: String?
    /// nil when Synapse signs with what turnkeeper expects (or nothing can be judged yet, before adoption);
    /// otherwise what is wrong and what to do.
    public let drift: String?

    /// Reads Synapse's configuration and, `againstState` (a single host; ``Host/synapseSigning(rotating:)``),
    /// turnkeeper's state. On a host of two only the secret is read: which epoch Synapse should be on is judged
    /// by the rotation itself.
    static func read(_ configuration: Configuration, againstState: Bool, rotating: Bool) async throws
        -> SynapseSigning
    {
        let synapse = SynapseSwitch(configuration: configuration, environment: .quiet)
        // Files first, then the state: a rotation saves a new secret before it writes it to Synapse's files, so
        // a secret read from the files is already in a state read after them.
        let signer = try await synapse.signer()
        guard againstState, !rotating,
            let saved = try await StateFile<RotationState>(
                directory: configuration.rotation.stateDirectory, name: "state.json"
            ).load(),
            saved.phase == .idle, let current = saved.current
        else { return SynapseSigning(secret: signer?.secret, location: signer?.location, drift: nil) }
        let drift: String?
        let resume = configuration.command("rotate --resume")
        let managed = configuration.synapse.managedFile
        if let signer, signer.secret == current {
            drift = nil
        } else if let signer {
            let held = saved.retiring.contains { $0.value == signer.secret }
            let fix =
                signer.file == managed
                ? "Run `\(resume)` (or `systemctl reload turnkeeper`): it writes \(managed) again with the current "
                    + "secret and restarts Synapse."
                : "Remove that line (turnkeeper's \(managed) sets the secret), then run `\(resume)` (or `systemctl "
                    + "reload turnkeeper`): it restarts Synapse onto the current secret."
            drift =
                "Synapse's configuration makes it sign with \(signer.secret.fingerprint) (\(signer.location)), not with "
                + "turnkeeper's current secret \(current.fingerprint): "
                + (held
                    ? "an older secret of turnkeeper's, put back since (a restored backup, configuration management). "
                    : "a secret turnkeeper did not choose (a re-applied snippet, a restored backup, a hand edit). ")
                + "turnkeeper keeps every secret Synapse signs with in coturn, but rotations cannot reach Synapse "
                + "while that file decides. \(fix)"
        } else {
            drift =
                "Synapse's configuration gives it no TURN secret any more (\(managed) removed or overridden with "
                + "null), so it hands out no TURN credentials and calls behind NAT fail. Run `\(resume)`: it writes "
                + "\(managed) again and restarts Synapse."
        }
        return SynapseSigning(secret: signer?.secret, location: signer?.location, drift: drift)
    }
}
