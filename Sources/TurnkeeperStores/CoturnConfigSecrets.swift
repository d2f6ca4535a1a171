import Glibc
import TurnkeeperCore
public import TurnkeeperCredentials
import TurnkeeperExecution

/// turnserver.conf's lines, plus the restart that makes coturn read them (dropping live calls). A change to
/// the file is not done until coturn is proven to run with it: until then a marker in the state directory
/// says the restart is owed, and every later add or remove (a resumed rotation, a retried retirement)
/// restarts coturn again first.
public struct CoturnConfigSecrets: CoturnSecretStore {
    /// "" once coturn answers as a file holding `accepting` (and not `refusing`) makes it, within the time given;
    /// else what it did instead. Asked with allocations, by the rotation (the store does no TURN itself).
    public typealias InForce =
        @Sendable (
            _ accepting: [TurnSecret], _ refusing: TurnSecret?, _ configFile: String, _ within: Duration
        ) async throws -> String

    package let store: CoturnConfigStore
    /// Present from just before turnserver.conf changes until coturn is proven to run with it.
    package let owedMarker: String
    let restartCommand: [String]
    /// How long the restart command may run, and then how long coturn has to answer with the file in force.
    let timeout: SynapseDuration
    let inForce: InForce

    public init(
        store: CoturnConfigStore, owedMarker: String, restartCommand: [String], timeout: SynapseDuration,
        inForce: @escaping InForce
    ) {
        self.store = store
        self.owedMarker = owedMarker
        self.restartCommand = restartCommand
        self.timeout = timeout
        self.inForce = inForce
    }

    public func secrets() async throws -> [TurnSecret] {
        let store = store
        return try await Blocking.run { try store.secrets() }
    }

    public func add(_ secret: TurnSecret) async throws {
        try await change(refusing: nil) { existing in existing.contains(secret) ? nil : existing + [secret] }
    }

    public func remove(_ secret: TurnSecret) async throws {
        try await change(refusing: secret) { existing in
            existing.contains(secret) ? existing.filter { $0 != secret } : nil
        }
    }

    /// Writes what `edit` makes of the file's secrets (nil: nothing to change), then restarts coturn if owed.
    private func change(refusing: TurnSecret?, _ edit: @escaping @Sendable ([TurnSecret]) -> [TurnSecret]?)
        async throws
    {
        let store = store
        let marker = owedMarker
        let owed = try await Blocking.run { () throws -> Bool in
            let existing = try store.secrets()
            if let changed = edit(existing) {
                try AtomicFile.write(
                    Array("coturn has not yet been proven to run with \(store.path)\n".utf8), to: marker,
                    permissions: 0o600, maximumPermissions: 0o600, existing: .replace)
                try store.setSecrets(changed)
            }
            return access(marker, F_OK) == 0
        }
        guard owed else { return }
        try await restart(accepting: try await secrets(), refusing: refusing)
        guard unlink(owedMarker) == 0 || errno == ENOENT else {
            throw TurnkeeperError(
                .unwritableFile,
                "cannot remove \(owedMarker): \(errnoDescription(errno)); coturn would be restarted again. Check the "
                    + "state directory.")
        }
    }

    /// Runs the restart command, then returns once coturn answers with the file in force: an allocation with
    /// each secret of `accepting` succeeds and, when given, one signed with `refusing` is refused. A restart
    /// command that exited 0 proves nothing by itself: the old coturn may still run, or none.
    private func restart(accepting: [TurnSecret], refusing: TurnSecret?) async throws {
        let path = store.path
        do throws(TurnkeeperError) {
            try await CommandRunner.run(
                restartCommand, what: "coturn restart", timeoutSeconds: max(1, Int(timeout.seconds)))
        } catch {
            throw TurnkeeperError(
                .restartFailed,
                "\(error.reason) \(path) has changed and coturn is not proven to run with it: the restart is "
                    + "owed, and `turnkeeper rotate --resume` redoes it.")
        }
        let seen = try await inForce(accepting, refusing, path, .milliseconds(timeout.milliseconds))
        if seen.isEmpty { return }
        throw TurnkeeperError(
            .restartFailed,
            "after its restart, coturn \(seen) (checked for coturn.restart_timeout, \(timeout.seconds) s), so "
                + "\(path) is not proven in force; the restart is owed. Check `journalctl -u coturn`, then run "
                + "`turnkeeper rotate --resume`, which restarts coturn again."
        )
    }
}
