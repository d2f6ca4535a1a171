import Glibc
import NIOCore
public import TurnkeeperCore
public import TurnkeeperCredentials
import TurnkeeperStores
import TurnkeeperSynapse
import TurnkeeperTURNClient

/// The rotation protocol (docs/rotation.md). Every step is persisted before the next begins and every
/// step can be done twice, so a run killed anywhere is finished by the next.
///
///  1. generate the new secret and save it;
///  2. add it to coturn, which then accepts old and new;
///  3. verify coturn grants an allocation with it (if not: take it out again, keep the old everywhere);
///  4. switch Synapse: write its file, restart it, wait until it answers;
///  5. once Synapse's credential lifetime plus the margin has passed, remove the old secret from coturn.
public final class Rotator {
    public let configuration: Configuration
    private let say: (String) -> Void
    private let now: () -> Int64
    /// Test-only: exit with status 99 right after this step (TURNKEEPER_TEST_ABORT_AFTER_STEP): 0 to 5, or
    /// "4a", between writing Synapse's file and restarting Synapse.
    private let abortAfterStep: String?
    /// Test-only: wait this long after each saved step (TURNKEEPER_TEST_STEP_DELAY_MS), so that a signal can
    /// land between two steps.
    private let stepDelay: Duration?
    /// Asked after each saved step; true stops the rotation there with ``RotationStopped``.
    private let shouldStop: @Sendable () -> Bool
    /// When a switch failed after Synapse was restarted, whether a retry restarts it again. The daemon retries by
    /// itself and must not restart Synapse in a loop for one failure; an admin's `rotate --resume` may.
    private let restartAgain: RestartPolicy

    public enum RestartPolicy: Sendable {
        /// Restart Synapse on every attempt of step 4.
        case always
        /// Restart again only once Synapse's configuration files have changed since the last restart.
        case whenConfigurationChanged
    }

    var statePath: String { configuration.rotation.stateDirectory + "/state.json" }

    public init(
        configuration: Configuration,
        say: @escaping (String) -> Void,
        now: @escaping () -> Int64 = WallClock.nowSeconds,
        shouldStop: @escaping @Sendable () -> Bool = { false },
        restartAgain: RestartPolicy = .always
    ) {
        self.configuration = configuration
        self.say = say
        self.now = now
        self.shouldStop = shouldStop
        self.restartAgain = restartAgain
        self.abortAfterStep = getenv("TURNKEEPER_TEST_ABORT_AFTER_STEP").map { String(cString: $0) }
        self.stepDelay = getenv("TURNKEEPER_TEST_STEP_DELAY_MS").flatMap { Int(String(cString: $0)) }.map {
            .milliseconds($0)
        }
    }

    // MARK: Commands

    /// Finishes a rotation in flight, retires what is due, and, unless `resumeOnly`, rotates once more.
    public func rotate(resumeOnly: Bool) async throws {
        let lock = try Lock(directory: configuration.rotation.stateDirectory)
        defer { lock.release() }
        // Before anything is saved, even an adoption: a file turnkeeper could not safely write stops it here.
        try synapseStore().checkWritable()
        var state = try await loadOrAdopt()
        if state.phase != .idle {
            say("resuming the rotation left in phase \(state.phase.rawValue)")
            state = try await advance(state)
        }
        state = try await retireDue(state)
        if !resumeOnly {
            let secret = try TurnSecret.generate()
            // Everything that can be known before step 1 is checked now: a rotation that cannot end with
            // Synapse on the new secret does not start.
            _ = try await preflight(for: secret)
            // A static line keeping the current secret does not stop the rotation, but its retirement will fail:
            // said now, not first at step 5.
            if configuration.coturn.store != .config, let conf = try? TurnserverConf.read(configuration),
                let current = state.current.flatMap({ try? TurnSecret(adopting: $0, source: statePath) }),
                let held = conf.secrets.first(where: { $0.secret == current })
            {
                say(
                    "warning: \(conf.path), line \(held.line) keeps the current secret (\(held.secret.fingerprint)) as a "
                        + "static-auth-secret: its retirement after this rotation will fail until that line is removed")
            }
            state.pending = secret.withExposedBytes { String(decoding: $0, as: UTF8.self) }
            state.phase = .adding
            try await persist(state, step: 1, "generated a new secret (\(fingerprint(state.pending)))")
            state = try await advance(state)
        }
    }

    /// Loads the state, or adopts Synapse's secret on a first run. The daemon calls it before it says it is ready.
    public func prepare() async throws {
        let lock = try Lock(directory: configuration.rotation.stateDirectory)
        defer { lock.release() }
        _ = try await loadOrAdopt()
    }

    /// The secret Synapse signs with now, to mint the daemon's probe credentials. Never printed.
    public func currentSecret() throws -> TurnSecret? {
        try RotationState.load(statePath)?.current.map { try TurnSecret(adopting: $0, source: statePath) }
    }

    /// How many secrets coturn accepts right now (for the metrics).
    public func coturnSecretCount() async throws -> Int {
        let coturn = configuration.coturn
        if coturn.store == .sqlite {
            // SQLite may wait for coturn's lock (busy timeout): on NIO's thread pool, never the cooperative one,
            // or a few concurrent scrapes would stall /healthz and the watchdog.
            let database = coturn.database
            let realm = coturn.realm
            return try await Blocking.run { try CoturnSQLiteStore(path: database, realm: realm).secrets().count }
        }
        return try await coturnSecrets().accepted().count
    }

    public func status() throws -> RotationStatus {
        let state = try RotationState.load(statePath) ?? RotationState()
        return RotationStatus(
            phase: state.phase.rawValue,
            current: state.current.map(fingerprint),
            pending: state.pending.map(fingerprint),
            retiring: state.retiring.map {
                .init(fingerprint: fingerprint($0.value), retiresAt: $0.after, failed: $0.failed)
            },
            lastRotation: state.lastRotation,
            currentAgeSeconds: state.lastRotation.map { now() - $0 },
            nextRotationDue: state.lastRotation.map { $0 + configuration.rotation.interval.seconds },
            lastResult: state.lastResult
        )
    }

    // MARK: Steps

    private func advance(_ start: RotationState) async throws -> RotationState {
        var state = start
        guard let pendingValue = state.pending else {
            state.phase = .idle
            return state
        }
        let pending = try TurnSecret(adopting: pendingValue, source: statePath)
        let coturn = try coturnSecrets()
        if state.phase == .adding {
            try await coturn.add(pending)
            state.phase = .verifying
            try await persist(state, step: 2, "coturn accepts the new secret (\(pending.fingerprint)) beside the old")
        }
        if state.phase == .verifying {
            do {
                try await verify(pending)
            } catch {
                try await coturn.remove(pending)
                state.pending = nil
                state.phase = .idle
                state.lastResult = "failed: coturn did not accept the new secret; the old one stays everywhere"
                try await persist(state, step: 3, "took the new secret out of coturn again", boundary: false)
                throw TurnkeeperError(
                    .checkFailed,
                    "coturn did not grant an allocation with the new secret at \(configuration.coturn.verifyURI) "
                        + "(\(error)); it was taken out again, and Synapse and coturn keep the old secret. Run "
                        + "`turnkeeper probe \(configuration.coturn.verifyURI) --secret-file …` to see why."
                )
            }
            state.phase = .switching
            try await persist(
                state, step: 3, "an allocation with the new secret succeeded at \(configuration.coturn.verifyURI)")
        }
        if state.phase == .switching {
            let synapse = try await preflight(for: pending)
            state = try await switchSynapse(to: pending, state: state, configuration: synapse)
            let lifetime = synapse.turnUserLifetime.seconds
            if let old = state.current, old != pendingValue {
                state.retiring.append(
                    .init(value: old, after: now() + lifetime + configuration.rotation.margin.seconds))
            }
            state.current = pendingValue
            state.pending = nil
            state.phase = .idle
            state.synapseRestart = nil
            state.lastRotation = now()
            state.lastResult = "ok"
            try await persist(
                state, step: 4, Self.switched(to: pending, checked: configuration.synapse.homeserver != nil))
        }
        return state
    }

    /// Removes each old secret that is due from coturn, and proves with an allocation at coturn.verify_uri that
    /// coturn refuses it. One still accepted stays in `retiring`, marked failed, and the run fails (exit 1).
    private func retireDue(_ start: RotationState) async throws -> RotationState {
        var state = start
        let coturn = try coturnSecrets()
        var failed: [String] = []
        for retiree in state.retiring where retiree.after <= now() {
            let fingerprint = fingerprint(retiree.value)
            // Never retire the secret Synapse uses, whatever the state says.
            if retiree.value != state.current {
                let secret = try TurnSecret(adopting: retiree.value, source: statePath)
                if let failure = await RetirementProof(configuration: configuration).retire(secret, from: coturn) {
                    if let index = state.retiring.firstIndex(where: { $0.value == retiree.value }) {
                        state.retiring[index].failed = failure
                    }
                    state.lastResult = "failed: \(fingerprint) is not retired: \(failure)"
                    try await persist(state, step: 5, "could not retire \(fingerprint): \(failure)", boundary: false)
                    failed.append(fingerprint)
                    continue
                }
            }
            state.retiring.removeAll { $0.value == retiree.value }
            if retiree.failed != nil { state.lastResult = "ok" }
            try await persist(
                state, step: 5,
                "retired \(fingerprint): coturn refuses it at \(configuration.coturn.verifyURI), and no credential "
                    + "signed with it is valid any more")
        }
        for retiree in state.retiring where retiree.failed == nil {
            say("\(fingerprint(retiree.value)) retires at \(WallClock.utcString(seconds: retiree.after))")
        }
        guard failed.isEmpty else {
            throw TurnkeeperError(
                .checkFailed,
                "retiring \(failed.joined(separator: ", ")) failed: coturn still accepts it, or its refusal could not "
                    + "be proven (see step 5 above; `turnkeeper status` keeps it listed). No new rotation starts "
                    + "until it is retired; fix the cause, then run `turnkeeper rotate --resume`."
            )
        }
        return state
    }

    /// First run: take the secret Synapse uses now as current, and make sure coturn accepts it.
    private func loadOrAdopt() async throws -> RotationState {
        if let state = try RotationState.load(statePath) { return state }
        var state = RotationState()
        let paths = configuration.synapse.configPaths
        let synapse = try await Blocking.run { try SynapseConfig.load(paths) }
        if let secret = synapse.turnSecret {
            try await coturnSecrets().add(secret)
            state.current = secret.withExposedBytes { String(decoding: $0, as: UTF8.self) }
            try await persist(
                state, step: 0, "adopted Synapse's current secret (\(secret.fingerprint)); coturn accepts it")
        } else {
            try await persist(state, step: 0, "Synapse has no TURN secret yet; the first rotation will set one")
        }
        return state
    }

    func verify(_ secret: TurnSecret) async throws {
        let credential = try CredentialMinter(secret: secret).credential(
            user: "@turnkeeper-rotation:localhost", expiry: now() + 600)
        try await allocate(with: TURNCredentials(username: credential.username, password: credential.password))
    }

    /// An allocation at coturn.verify_uri with `credentials`, released at once.
    private func allocate(with credentials: TURNCredentials) async throws {
        let uri = try TURNURI(configuration.coturn.verifyURI)
        if case .refused(let error) = try await TURNClient.allocateAndRelease(at: uri, credentials: credentials) {
            throw error
        }
    }

    /// Checks everything that decides whether Synapse will end up using `secret`, without changing anything:
    /// the managed files can be written safely, Synapse's configuration reads, the managed file is one Synapse
    /// reads and no later file overrides it, and the lifetime fits the schedule. Returns Synapse's configuration
    /// as it will be once the files are written.
    func preflight(for secret: TurnSecret) async throws -> SynapseConfig {
        let synapse = configuration.synapse
        let store = synapseStore()
        try store.checkWritable()
        let written = try store.render(secret)
        let paths = synapse.configPaths
        let after = try await Blocking.run { try SynapseConfig.load(paths, replacing: written) }
        guard after.files.contains(synapse.managedFile) else {
            throw TurnkeeperError(
                .invalidConfiguration,
                "Synapse would never read \(synapse.managedFile): it is neither one of synapse.config nor a *.yaml file "
                    + "directly in one of its directories (\(paths.joined(separator: ", "))). Nothing was changed. "
                    + "Point synapse.managed_file into Synapse's conf.d, or add its directory to synapse.config.")
        }
        for key in ["turn_shared_secret", "turn_shared_secret_path"] {
            if let origin = after.origins[key], origin != synapse.managedFile {
                throw TurnkeeperError(
                    .invalidConfiguration,
                    "\(origin) sets \(key) and is read after \(synapse.managedFile), so Synapse would keep "
                        + "ignoring the secret turnkeeper writes. Nothing was changed. Remove \(key) from \(origin) "
                        + "(turnkeeper's file sets it), then rotate again.")
            }
        }
        guard let effective = after.turnSecret, effective == secret else {
            throw TurnkeeperError(
                .invalidConfiguration,
                "with turnkeeper's file written, Synapse's configuration would still not use the new secret. Nothing "
                    + "was changed. Run `turnkeeper check` to see which file decides.")
        }
        if let problem = configuration.scheduleProblem(lifetime: after.turnUserLifetime) {
            let source = after.location(of: "turn_user_lifetime") ?? "Synapse's default lifetime"
            throw TurnkeeperError(
                .invalidConfiguration,
                "\(source): \(problem) (rotation.epoch is in \(configuration.path)). Nothing was changed.")
        }
        return after
    }

    private func synapseStore() -> SynapseSecretStore {
        let synapse = configuration.synapse
        return SynapseSecretStore(
            confFile: synapse.managedFile,
            mode: synapse.mode,
            secretFile: synapse.secretFile,
            group: synapse.group,
            managedOptions: synapse.managedOptions
        )
    }

    /// What step 4 can truly say: what Synapse hands out is known only when it was checked through its API.
    static func switched(to secret: TurnSecret, checked: Bool) -> String {
        checked
            ? "Synapse switched to \(secret.fingerprint): it hands out credentials signed with it, and coturn accepts them"
            : "Synapse switched to \(secret.fingerprint) (files written, restarted); what it hands out was not checked: "
                + "set synapse.homeserver and synapse.access_token_file for that"
    }

    /// Switches Synapse to `secret` outside a random rotation (the Synapse host of two hosts, at an epoch's start),
    /// after the same preflight.
    func switchSynapse(to secret: TurnSecret) async throws {
        let expected = try await preflight(for: secret)
        _ = try await switchSynapse(to: secret, state: RotationState(), configuration: expected)
    }

    /// Step 4: writes Synapse's files, restarts it (once per configuration, unless asked to always) and checks
    /// that it answers and hands out the new secret. `expected` is Synapse's configuration once the files are
    /// written, from the preflight.
    private func switchSynapse(to secret: TurnSecret, state start: RotationState, configuration expected: SynapseConfig)
        async throws -> RotationState
    {
        var state = start
        let synapse = configuration.synapse
        let previous = state.synapseRestart
        let alreadyRestarted =
            previous?.secret == secret.fingerprint && previous?.configurationDigest == expected.digest
        // Written on every attempt, restarted or not: a file put back by hand since is set right again.
        try synapseStore().write(secret)
        if alreadyRestarted && restartAgain == .whenConfigurationChanged, let previous {
            let when = WallClock.utcString(seconds: previous.at)
            guard previous.succeeded else {
                throw TurnkeeperError(
                    .checkFailed,
                    "the Synapse restart for \(secret.fingerprint) failed at \(when), and Synapse's configuration has not "
                        + "changed since, so it is not restarted again for the same failure. Fix the cause (`journalctl "
                        + "-u matrix-synapse`), then run `turnkeeper rotate --resume`.")
            }
            say(
                "Synapse was restarted for \(secret.fingerprint) at \(when) with its configuration as it is now; not "
                    + "restarting it again for the same failure, only checking it again")
        } else {
            abortIfAsked(after: "4a")
            // Recorded before the command runs: a restart that hangs or is killed counts as tried and failed.
            state.synapseRestart = .init(
                secret: secret.fingerprint, configurationDigest: expected.digest, at: now(), succeeded: false)
            try state.save(statePath)
            say("wrote \(synapse.managedFile); restarting Synapse: \(synapse.restartCommand.joined(separator: " "))")
            try await CommandRunner.run(synapse.restartCommand, what: "Synapse restart")
            state.synapseRestart?.succeeded = true
            try state.save(statePath)
        }
        if let health = synapse.healthURL {
            let clock = ContinuousClock()
            let deadline = clock.now + .seconds(120)
            var healthy = false
            while !healthy && clock.now < deadline {
                healthy = await TurnServerClient.isHealthy(health)
                if !healthy { try await Task.sleep(for: .milliseconds(200)) }
            }
            guard healthy else {
                throw TurnkeeperError(
                    .checkFailed,
                    "Synapse did not answer \(health) within 120 s of its restart. Check `journalctl -u matrix-synapse`; "
                        + "then run `turnkeeper rotate --resume`."
                )
            }
        }
        if let homeserver = synapse.homeserver, let tokenFile = synapse.accessTokenFile {
            try await verifyEndToEnd(homeserver: homeserver, tokenFile: tokenFile, secret: secret)
        }
        return state
    }

    /// What a Matrix client gets now must be signed with the new secret and accepted by coturn.
    private func verifyEndToEnd(homeserver: String, tokenFile: String, secret: TurnSecret) async throws {
        let token = try FileContents.readValue(tokenFile, what: "a Matrix access token")
        let advice = "Synapse and coturn both still accept it; fix the cause, then run `turnkeeper rotate --resume`."
        guard
            case .credentials(let answer) = try await TurnServerClient.fetch(homeserver: homeserver, accessToken: token)
        else {
            throw TurnkeeperError(
                .checkFailed, "after the switch, \(homeserver) hands out no TURN credentials. \(advice)")
        }
        let verdict = try CredentialVerifier(secrets: [secret]).verify(
            username: answer.username, password: answer.password, nowSeconds: now())
        guard case .valid = verdict else {
            throw TurnkeeperError(
                .checkFailed,
                "after the switch, \(homeserver) hands out credentials not signed with the new secret (\(secret.fingerprint)): "
                    + "a conf.d file read after \(configuration.synapse.managedFile) may override it. \(advice)"
            )
        }
        try await allocate(with: TURNCredentials(username: answer.username, password: answer.password))
        say("Synapse hands out credentials signed with \(secret.fingerprint), and coturn accepts them")
    }

    // MARK: Helpers

    func coturnSecrets() throws(TurnkeeperError) -> any CoturnSecrets {
        let coturn = configuration.coturn
        switch coturn.store {
        case .sqlite:
            return CoturnSQLiteStore(path: coturn.database, realm: coturn.realm)
        case .redis:
            guard let redis = coturn.redis else {
                throw TurnkeeperError(.invalidArgument, "coturn.store is redis without a coturn.redis section")
            }
            return CoturnRedisStore(endpoint: try redis.endpoint(), realm: coturn.realm)
        case .postgres:
            guard let postgres = coturn.postgres else {
                throw TurnkeeperError(.invalidArgument, "coturn.store is postgres without a coturn.postgres section")
            }
            return CoturnPostgresStore(endpoint: try postgres.endpoint(), realm: coturn.realm)
        case .config:
            let restart = coturn.restartCommand ?? ["systemctl", "restart", "coturn"]
            let verifyURI = coturn.verifyURI
            let path = coturn.configFile ?? Configuration.defaultTurnserverConf
            let timeout = coturn.restartTimeout
            return CoturnConfigSecrets(
                store: CoturnConfigStore(path: path),
                owedMarker: configuration.coturnRestartOwedMarker
            ) { accepting, refusing in
                do throws(TurnkeeperError) {
                    try await CommandRunner.run(
                        restart, what: "coturn restart", timeoutSeconds: max(1, Int(timeout.seconds)))
                } catch {
                    throw TurnkeeperError(
                        error.code,
                        "\(error.reason) \(path) has changed and coturn is not proven to run with it: the restart is "
                            + "owed, and `turnkeeper rotate --resume` redoes it.")
                }
                try await Self.waitForCoturn(
                    at: verifyURI, timeout: timeout, accepting: accepting, refusing: refusing, configFile: path)
            }
        }
    }

    /// After a restart, until coturn answers at `uri` with turnserver.conf in force: an allocation succeeds with
    /// every secret the file holds, and one signed with the secret just removed is refused. A restart command
    /// that exited 0 proves nothing by itself: the old coturn may still run, or none.
    private static func waitForCoturn(
        at text: String, timeout: SynapseDuration, accepting: [TurnSecret], refusing: TurnSecret?, configFile: String
    ) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + .milliseconds(timeout.milliseconds)
        var seen = "did not answer at \(text)"
        while true {
            do {
                seen = try await CoturnAllocation.fileInForce(
                    at: text, accepting: accepting, refusing: refusing, configFile: configFile,
                    timeout: min(.seconds(3), max(.milliseconds(200), deadline - clock.now)))
                if seen.isEmpty { return }
            } catch {
                seen = "did not answer at \(text) (\(error))"
            }
            guard clock.now < deadline else { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw TurnkeeperError(
            .checkFailed,
            "after its restart, coturn \(seen) (checked for coturn.restart_timeout, \(timeout.seconds) s), so "
                + "\(configFile) is not proven in force; the restart is owed. Check `journalctl -u coturn`, then run "
                + "`turnkeeper rotate --resume`, which restarts coturn again."
        )
    }

    /// Saves `state`; at a `boundary`, a shutdown may stop the rotation here.
    private func persist(_ state: RotationState, step: Int, _ message: String, boundary: Bool = true) async throws {
        try state.save(statePath)
        say("step \(step): \(message)")
        abortIfAsked(after: String(step))
        if let stepDelay { try? await Task.sleep(for: stepDelay) }
        if boundary && shouldStop() {
            say("stopping after step \(step) as asked; the next start resumes from phase \(state.phase.rawValue)")
            throw RotationStopped(phase: state.phase.rawValue)
        }
    }

    private func abortIfAsked(after step: String) {
        if step == abortAfterStep {
            say("aborting after step \(step) (TURNKEEPER_TEST_ABORT_AFTER_STEP)")
            _exit(99)
        }
    }

    private func fingerprint(_ value: String?) -> String {
        guard let value, let secret = try? TurnSecret(adopting: value, source: "state") else { return "none" }
        return secret.fingerprint
    }
}

/// A rotation stopped at a step boundary because the process is shutting down. Its state is saved; the next
/// `rotate` or `run` resumes it.
public struct RotationStopped: Error, Sendable {
    public let phase: String
}

/// An exclusive lock on the state directory: two turnkeeper processes never rotate at once. Taking it also
/// checks the directory: turnkeeper's state must live where only root can change it.
struct Lock {
    private let fd: Int32

    init(directory: String) throws(TurnkeeperError) {
        let trusted = try TrustedDirectory(directory, create: true)
        fd = try trusted.openLockFile("lock")
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw TurnkeeperError(
                .checkFailed,
                "another turnkeeper holds \(trusted.describe("lock")): a rotation is running. Wait for it, or check "
                    + "`pgrep -a turnkeeper`."
            )
        }
        for name in ["state.json", "epochs.json"] { trusted.removeStaleTemporaries(for: name) }
    }

    func release() {
        flock(fd, LOCK_UN)
        close(fd)
    }
}
