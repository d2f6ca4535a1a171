import Glibc
import TurnkeeperConfiguration
import TurnkeeperCore
public import TurnkeeperCredentials
import TurnkeeperExecution
import TurnkeeperStores

/// `turnkeeper init --move-static-secret`: coturn's `static-auth-secret` lines (Synapse's TURN howto) moved into
/// its SQLite user database once, so that no rotation restarts coturn again. One coturn restart, proven by an
/// allocation; on any failure after the first change, turnserver.conf is put back and coturn restarted on it.
///
/// In order: everything is checked before anything changes (turnserver.conf's lines, the database and its
/// table, its owner); turnserver.conf is backed up beside itself; the secrets are added to the database (which
/// then switches to WAL, right before the restart); the lines are removed; coturn is restarted; an allocation
/// signed with each moved secret must be granted.
public struct StaticSecretMove: Sendable {
    public let turnserverConf: String
    public let database: String
    public let realm: String
    public let verifyURI: String
    public let restartCommand: [String]
    public let timeout: SynapseDuration
    /// turnkeeper's state directory: its lock keeps a running daemon from changing turnserver.conf meanwhile.
    public let stateDirectory: String

    public init(
        turnserverConf: String, database: String, realm: String, verifyURI: String, restartCommand: [String],
        timeout: SynapseDuration, stateDirectory: String
    ) {
        self.turnserverConf = turnserverConf
        self.database = database
        self.realm = realm
        self.verifyURI = verifyURI
        self.restartCommand = restartCommand
        self.timeout = timeout
        self.stateDirectory = stateDirectory
    }

    /// What was done, for the terminal: never a secret.
    public struct Outcome: Sendable {
        /// Fingerprints of the secrets now in the database instead of turnserver.conf.
        public var moved: [String]
        /// turnserver.conf as it was, beside it.
        public var backup: String?
        /// How to undo it.
        public var wayBack: String
        /// False when there was nothing to move (no static-auth-secret line) and nothing was changed.
        public var changed: Bool
    }

    public func run(say: @Sendable (String) -> Void) async throws -> Outcome {
        let lock = try await Lock.take(stateDirectory)
        defer { lock.release() }
        let conf = CoturnConfigStore(path: turnserverConf)
        let store = CoturnSQLiteStore(path: database, realm: realm)
        let path = turnserverConf
        // Checked before anything changes: the lines, the database, its table and owner.
        let (lines, original) = try await Blocking.run {
            () throws -> ([(line: Int, secret: TurnSecret)], FileContents) in
            let lines = try conf.secretLines()
            guard let contents = try TrustedDirectory(containing: path).read(TrustedDirectory.split(path).name) else {
                throw TurnkeeperError(.unreadableFile, "\(path) does not exist; nothing was changed.")
            }
            return (lines, contents)
        }
        guard !lines.isEmpty else {
            let mode = (try? await store.journalMode()) ?? "?"
            return Outcome(
                moved: [], backup: nil,
                wayBack: "\(path) holds no static-auth-secret line: nothing to move (coturn's database journal: "
                    + "\(mode))",
                changed: false)
        }
        _ = try await store.secrets()
        let database = database
        try await Blocking.run { try Self.checkDatabaseFile(database) }
        try await refuseRunningDaemon()
        try await refuseUnitSecrets()
        try await proveCoturnReadsDatabase(store, say: say)

        let secrets = lines.map(\.secret)
        let backup = try await Blocking.run { try Self.backUp(original, of: path) }
        say(
            "backed up \(path) to \(backup) (same owner, mode at most 0640). It holds the old secret: remove it once "
                + "the way back is not needed (after the first rotation it would bring back a retired secret)")
        let wayBack =
            "cp -p \(backup) \(path) && \(restartCommand.joined(separator: " ")); then set coturn.store: config in "
            + "turnkeeper.yaml (the moved secrets stay in \(database) too: `turnkeeper check` lists them)"
        var fileChanged = false
        do {
            for secret in secrets { try await store.add(secret) }
            say(
                "added \(secrets.map(\.fingerprint).joined(separator: ", ")) to \(database) (realm \(realm); "
                    + "journal: \(try await store.journalMode()))")
            fileChanged = true
            try await Blocking.run { try conf.setSecrets([]) }
            say(
                "removed static-auth-secret from \(path) (line \(lines.map { String($0.line) }.joined(separator: ", ")))"
            )
            try await restartAndProve(accepting: secrets, say: say)
        } catch {
            let reason = (error as? TurnkeeperError)?.reason ?? "\(error)"
            guard fileChanged else {
                throw TurnkeeperError(
                    .verificationFailed,
                    "moving the static secret failed before \(path) changed: \(reason) coturn was not restarted; "
                        + "secrets already added to \(database) stay (harmless: coturn accepts them already).")
            }
            // Back to the file as it was, and coturn on it: the secrets it accepted are accepted again.
            let restored = await restore(original, to: path, accepting: secrets)
            let outcome =
                switch restored {
                case .inForce:
                    "\(path) was put back as it was, and coturn, restarted on it, accepts its secrets again; the "
                        + "secrets added to \(database) stay (harmless: coturn accepted them already). Nothing else "
                        + "was changed."
                case .notProven(let why):
                    "\(path) was put back as it was and coturn restarted on it, but coturn was not seen accepting "
                        + "its secrets again (\(why)): check `journalctl -u coturn` and `turnkeeper check`."
                case .failed:
                    "Putting \(path) back failed too: restore it from \(backup) and restart coturn."
                }
            throw TurnkeeperError(.verificationFailed, "moving the static secret failed: \(reason) " + outcome)
        }
        return Outcome(moved: secrets.map(\.fingerprint), backup: backup, wayBack: wayBack, changed: true)
    }

    /// Restarts coturn once, then waits until an allocation signed with each of `accepting` is granted: with the
    /// lines gone, only the database can have given them.
    private func restartAndProve(accepting: [TurnSecret], say: @Sendable (String) -> Void) async throws {
        say("restarting coturn once: \(restartCommand.joined(separator: " "))")
        try await CommandRunner.run(
            restartCommand, what: "coturn restart", timeoutSeconds: max(1, Int(timeout.seconds)))
        let seen = try await AllocationProbe(uri: verifyURI).awaitInForce(
            accepting: accepting, refusing: nil, configFile: database, within: .milliseconds(timeout.milliseconds))
        if seen.isEmpty {
            say("coturn grants an allocation at \(verifyURI) with each moved secret, now from \(database)")
            return
        }
        throw TurnkeeperError(
            .restartFailed,
            "after its restart, coturn \(seen) within \(timeout.seconds) s (is its userdb= \(database)? "
                + "`journalctl -u coturn`)")
    }

    /// How far putting turnserver.conf back got.
    enum Restored {
        case inForce
        case notProven(String)
        case failed
    }

    /// Puts `original` back (atomically, its owner and mode kept), restarts coturn, and waits until it accepts
    /// `accepting` again.
    private func restore(_ original: FileContents, to path: String, accepting: [TurnSecret]) async -> Restored {
        do {
            try await Blocking.run {
                try TrustedDirectory(containing: path).write(
                    original.bytes, to: TrustedDirectory.split(path).name, permissions: original.permissions,
                    maximumPermissions: original.permissions, group: nil, existing: .replace)
            }
            try await CommandRunner.run(
                restartCommand, what: "coturn restart", timeoutSeconds: max(1, Int(timeout.seconds)))
        } catch {
            return .failed
        }
        do {
            let seen = try await AllocationProbe(uri: verifyURI).awaitInForce(
                accepting: accepting, refusing: nil, configFile: path, within: .milliseconds(timeout.milliseconds))
            return seen.isEmpty ? .inForce : .notProven(seen)
        } catch {
            return .notProven((error as? TurnkeeperError)?.reason ?? "\(error)")
        }
    }

    /// A copy of turnserver.conf beside it, with its owner and mode (it holds the secret): never replaced.
    static func backUp(_ original: FileContents, of path: String) throws(TurnkeeperError) -> String {
        let directory = try TrustedDirectory(containing: path)
        let stamp = WallClock.utcString(seconds: WallClock.nowSeconds()).filter { $0.isNumber }
        let name = TrustedDirectory.split(path).name + ".turnkeeper-backup-" + stamp
        try directory.write(
            original.bytes, to: name, permissions: original.permissions & 0o640, maximumPermissions: 0o640,
            group: original.groupID, existing: .refuse)
        return directory.describe(name)
    }

    /// A running daemon with store: config would put the lines back at its next repair, before anyone reloads it.
    private func refuseRunningDaemon() async throws {
        let state = try? await CommandRunner.run(
            ["systemctl", "is-active", "turnkeeper.service"], what: "systemctl is-active", timeoutSeconds: 10,
            capture: true)
        // is-active exits non-zero for anything but active: an error here means "not running" (or no systemd).
        guard let state, String(decoding: state, as: UTF8.self).hasPrefix("active") else { return }
        throw TurnkeeperError(
            .invalidConfiguration,
            "turnkeeper.service is running, with store: config in memory: it would write static-auth-secret back. "
                + "Nothing was changed. Run `systemctl stop turnkeeper`, then this again, then `systemctl start "
                + "turnkeeper`.")
    }

    /// A --static-auth-secret flag in coturn's unit keeps a secret no file move can take away, and would make
    /// the proof pass for the wrong reason.
    private func refuseUnitSecrets() async throws {
        guard
            let shown = try? await CommandRunner.run(
                ["systemctl", "show", "coturn.service", "-p", "ExecStart"], what: "systemctl show", timeoutSeconds: 10,
                capture: true)
        else { return }
        guard String(decoding: shown, as: UTF8.self).contains("static-auth-secret") else { return }
        throw TurnkeeperError(
            .invalidConfiguration,
            "coturn.service starts turnserver with a --static-auth-secret flag (`systemctl cat coturn`), which "
                + "coturn accepts beside its database whatever the file says. Nothing was changed. Remove the flag "
                + "(a drop-in of yours, most likely), `systemctl daemon-reload`, then run this again.")
    }

    /// Before anything changes: a test secret added to the database must be accepted by coturn at verify_uri (so
    /// coturn reads this database under this realm), then it is taken out again.
    private func proveCoturnReadsDatabase(_ store: CoturnSQLiteStore, say: @Sendable (String) -> Void) async throws {
        let canary = try TurnSecret.generate()
        try await store.add(canary)
        let accepted: Bool
        do {
            var probe = AllocationProbe(uri: verifyURI)
            probe.timeout = .seconds(5)
            accepted = try await probe.accepts(canary, now: WallClock.nowSeconds())
        } catch {
            try? await store.remove(canary)
            throw TurnkeeperError(
                .verificationFailed,
                "coturn did not answer at \(verifyURI) (\(error)); nothing was changed. Is coturn running?")
        }
        try await store.remove(canary)
        guard accepted else {
            throw TurnkeeperError(
                .verificationFailed,
                "coturn at \(verifyURI) refused a test secret added to \(database) under realm \(realm), so it does not "
                    + "read that database (another userdb=?) or that realm; nothing was changed (the test secret was "
                    + "taken out again). Check userdb= and realm= in \(turnserverConf).")
        }
        say("coturn reads \(database) under realm \(realm): a test secret added there was accepted, then taken out")
    }

    /// The database must be a regular file, not a link. Its owner is kept: SQLite gives its -wal and -shm files
    /// the same owner, so coturn can still open them.
    static func checkDatabaseFile(_ path: String) throws(TurnkeeperError) {
        var info = stat()
        guard lstat(path, &info) == 0 else {
            throw TurnkeeperError(
                .unreadableFile,
                "cannot read coturn's database \(path): \(errnoDescription(errno)); nothing was changed. Start coturn "
                    + "once (it creates it), or name its userdb=.")
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw TurnkeeperError(
                .unwritableFile, "\(path) is not a regular file (a link?); nothing was changed. Name the real file.")
        }
    }
}
