import FoundationEssentials
import Synchronization
import TurnkeeperConfiguration
import TurnkeeperCore
public import TurnkeeperCredentials
import TurnkeeperStores
import TurnkeeperSwitching
import TurnkeeperSynapse

/// The rotation protocol of a single host (docs/rotation.md). Every step is persisted before the next begins and
/// every step can be done twice, so a run killed anywhere is finished by the next.
///
///  1. generate the new secret and save it;
///  2. add it to coturn, which then accepts old and new;
///  3. verify coturn grants an allocation with it (if not: take it out again, keep the old everywhere);
///  4. switch every consumer, Synapse first, then the others listed in turnkeeper.yaml, each saved on its own:
///     write its files, restart or reload it, check what it hands out;
///  5. once the longest of their credential lifetimes plus the margin has passed, remove the old secret from
///     coturn and prove coturn refuses it.
///
/// The state machine only: coturn's store, the allocation probe and the consumers are given to it.
public struct SingleHostRotation: SecretRotation {
    let configuration: Configuration
    let environment: RotationEnvironment
    /// During `rotate`, the run's ``ListedOnce`` view of it.
    private(set) var coturn: any CoturnSecretStore
    let probe: any CoturnProbe
    let synapse: SynapseSwitch
    /// In switching order, Synapse first.
    let consumers: [any ConsumerSwitch]
    let state: StateFile<RotationState>

    public var schedule: RotationScheduleKind { .interval }

    init(
        configuration: Configuration, environment: RotationEnvironment, coturn: any CoturnSecretStore,
        probe: any CoturnProbe, synapse: SynapseSwitch, others: [any ConsumerSwitch]? = nil
    ) {
        self.configuration = configuration
        self.environment = environment
        self.coturn = coturn
        self.probe = probe
        self.synapse = synapse
        self.consumers =
            [synapse] + (others ?? ConsumerSwitches.others(configuration, environment: environment.switching))
        self.state = StateFile(directory: configuration.rotation.stateDirectory, name: "state.json")
    }

    private var say: @Sendable (String) -> Void { environment.say }
    private func now() -> Int64 { environment.now() }

    // MARK: Commands

    public func rotate(_ request: RotationRequest) async throws {
        let lock = try await Lock.take(configuration.rotation.stateDirectory)
        defer { lock.release() }
        // coturn's store is listed once per run (a Redis or PostgreSQL session each time), not at every step.
        var run = self
        run.coturn = ListedOnce(coturn)
        try await run.perform(request)
    }

    private func perform(_ request: RotationRequest) async throws {
        // Before anything is saved, even an adoption: a file turnkeeper could not safely write stops it here.
        for consumer in consumers { try await consumer.checkWritable(removingStale: true) }
        // The notice that every app must be listed is said once: at adoption when no rotation follows, else
        // before the first rotation.
        var current = try await loadOrAdopt(announce: request == .resume)
        let loaded = current
        let repair = try await repairStore(current)
        current = repair.state
        if current.phase != .idle {
            say("resuming the rotation left in phase \(current.phase.rawValue)")
            current = try await advance(current)
        }
        current = try await bringInLine(current)
        current = try await realign(current)
        current = try await retireDue(current)
        guard request == .rotate else {
            if repair.result.isEmpty, Self.unchanged(loaded, current) { say(await nothingToResume(current)) }
            return
        }
        let secret = try TurnSecret.generate()
        // Everything that can be known before step 1 is checked now: a rotation that cannot end with every
        // consumer on the new secret does not start.
        let known = try await coturn.secrets() + (current.current.map { [$0] } ?? []) + current.retiring.map(\.value)
        for consumer in consumers { _ = try await consumer.preflight(for: secret, known: known) }
        if current.lastRotation == nil { say(Self.listedConsumersNotice(consumers)) }
        // A static line keeping the current secret does not stop the rotation, but its retirement will fail:
        // said now, not first at step 5.
        if let held = current.current, let warning = await RetirementProof.staticLineWarning(held, configuration) {
            say(warning)
        }
        current.pending = secret
        current.phase = .adding
        try await persist(current, step: 1, "generated a new secret (\(secret.fingerprint))")
        _ = try await advance(current)
    }

    public func prepare() async throws {
        let lock = try await Lock.take(configuration.rotation.stateDirectory)
        defer { lock.release() }
        _ = try await loadOrAdopt(announce: false)
    }

    public func currentSecret() async throws -> TurnSecret? { try await state.load()?.current }

    public func reconcile(repair: Bool) async throws -> Reconciliation? {
        guard repair else {
            guard let saved = try await state.load() else { return nil }
            return try await Reconciliation.run(
                store: coturn, needed: saved.neededInStore, retired: saved.retired ?? [], repair: false,
                keeps: { await keepers(of: $0, saved) })
        }
        let lock = try await Lock.take(configuration.rotation.stateDirectory)
        defer { lock.release() }
        guard let saved = try await state.load() else { return nil }
        return try await repairStore(saved).result
    }

    /// Puts coturn's store in line with `saved`, says so and tells the observer when it had drifted; returns the
    /// state with the removals marked (saved).
    private func repairStore(_ saved: RotationState) async throws -> (state: RotationState, result: Reconciliation) {
        let result = try await Reconciliation.run(
            store: coturn, needed: saved.neededInStore, retired: saved.retired ?? [], repair: true,
            keeps: { await keepers(of: $0, saved) })
        var updated = saved
        if !result.removedDigests.isEmpty {
            updated.retired = RetiredSecret.markRemoved(result.removedDigests, in: saved.retired)
            try await state.save(updated)
        }
        if !result.isEmpty {
            say(result.summary)
            try await environment.observe(.storeRepaired(result))
        }
        return (updated, result)
    }

    public func status() async throws -> RotationStatus {
        let saved = try await state.load() ?? RotationState()
        return RotationStatus(
            phase: saved.phase.rawValue,
            current: saved.current?.fingerprint,
            pending: saved.pending?.fingerprint,
            retiring: saved.retiring.map {
                .init(fingerprint: $0.value.fingerprint, retiresAt: $0.after, failed: $0.failed)
            },
            lastRotation: saved.lastRotation,
            currentAgeSeconds: saved.lastRotation.map { now() - $0 },
            nextRotationDue: saved.lastRotation.map { $0 + configuration.rotation.interval.seconds },
            lastResult: saved.lastResult
        )
    }

    // MARK: Steps

    private func advance(_ start: RotationState) async throws -> RotationState {
        var current = start
        guard let pending = current.pending else {
            current.phase = .idle
            return current
        }
        if current.phase == .adding {
            try await coturn.add(pending)
            current.phase = .verifying
            try await persist(current, step: 2, "coturn accepts the new secret (\(pending.fingerprint)) beside the old")
        }
        if current.phase == .verifying {
            do {
                try await probe.verify(pending, now: now())
            } catch {
                try await coturn.remove(pending)
                current.retired = RetiredSecret.remember(pending, at: now(), in: current.retired)
                current.pending = nil
                current.phase = .idle
                current.lastResult = "failed: coturn did not accept the new secret; the old one stays everywhere"
                try await persist(current, step: 3, "took the new secret out of coturn again", boundary: false)
                throw TurnkeeperError(
                    .verificationFailed,
                    "coturn did not grant an allocation with the new secret at \(probe.uri) (\(error)); it was taken "
                        + "out again, and Synapse and coturn keep the old secret. Run `turnkeeper probe \(probe.uri) "
                        + "--secret-file …` to see why."
                )
            }
            current.phase = .switching
            try await persist(current, step: 3, "an allocation with the new secret succeeded at \(probe.uri)")
        }
        if current.phase == .switching {
            var switched = current.switched ?? []
            // A file may hold any secret coturn accepts, as before step 1.
            let known =
                try await coturn.secrets() + (current.current.map { [$0] } ?? []) + current.retiring.map(\.value)
            for (index, consumer) in consumers.enumerated() where !switched.contains(consumer.name) {
                let plan = try await consumer.preflight(for: pending, known: known)
                let lifetime = plan.lifetime
                let message = try await switchRecording(consumer, plan, from: current)
                switched.append(consumer.name)
                current.switched = switched
                current.setRestart(nil, of: consumer.name)
                current.longestLifetime = max(current.longestLifetime ?? 0, lifetime)
                try await state.save(current)
                if consumers.count > 1 { say("step 4 (\(index + 1) of \(consumers.count)): \(message)") }
                try await environment.observe(.consumerSwitched(consumer.name))
            }
            let longest = current.longestLifetime ?? 0
            if let old = current.current, old != pending {
                current.retiring.append(
                    .init(value: old, after: now() + longest + configuration.rotation.margin.seconds))
            }
            let message =
                consumers.count == 1
                ? synapse.switchedMessage(to: pending)
                : "every consumer (\(consumers.map(\.label).joined(separator: ", "))) switched to \(pending.fingerprint)"
                    + (current.current == nil || current.current == pending
                        ? ""
                        : "; the old secret retires once the longest credential lifetime among them (\(longest) s) "
                            + "plus the margin has passed")
            current.current = pending
            current.pending = nil
            current.phase = .idle
            current.synapseRestart = nil
            current.switched = nil
            current.consumerRestarts = nil
            current.longestLifetime = nil
            current.members = consumers.map(\.name)
            current.lastRotation = now()
            current.lastResult = "ok"
            try await persist(current, step: 4, message)
        }
        return current
    }

    /// Switches `consumer` to `secret`, saving each restart it records on top of `saved` (a restart that hangs
    /// or is killed counts as tried).
    private func switchRecording(_ consumer: any ConsumerSwitch, _ plan: SwitchPlan, from saved: RotationState)
        async throws -> String
    {
        try await consumer.switchTo(plan, previous: saved.restart(of: consumer.name), probe: probe) { restart in
            var recorded = saved
            recorded.setRestart(restart, of: consumer.name)
            try await state.save(recorded)
        }
    }

    /// Consumers listed since the current secret was set (or, on a first run, all of them) are brought onto it
    /// on every run, so that listing an app late and running `rotate --resume` (or waiting for the daemon) is
    /// enough. One that already signs with it is only recorded. One that is switched makes every retiring
    /// secret wait for its credential lifetime too, since it may have signed with one of them.
    private func bringInLine(_ start: RotationState) async throws -> RotationState {
        var current = start
        guard current.phase == .idle, let secret = current.current else { return current }
        let joining = consumers.filter { !(current.members ?? []).contains($0.name) }
        guard !joining.isEmpty else { return current }
        let known = try await coturn.secrets() + [secret] + current.retiring.map(\.value)
        for consumer in joining {
            let plan = try await consumer.preflight(for: secret, known: known)
            if case .signsWith(let used, _) = await consumer.inUse(candidates: [secret], now: now()), used == secret {
                say("\(consumer.label) signs with the current secret (\(secret.fingerprint)) already")
            } else {
                say(try await switchRecording(consumer, plan, from: current))
                let after = now() + plan.lifetime + configuration.rotation.margin.seconds
                for index in current.retiring.indices where current.retiring[index].after < after {
                    current.retiring[index].after = after
                }
            }
            current.setRestart(nil, of: consumer.name)
            current.members = (current.members ?? []) + [consumer.name]
            try await state.save(current)
        }
        return current
    }

    /// Members whose files name another secret than the current one were changed behind turnkeeper's back (a
    /// restored backup, a re-applied snippet, configuration management): each is switched back, or, when a file
    /// turnkeeper does not write decides, the run stops here with that file and line, before any retirement.
    /// One seen drifting is switched (restarted) once more when its files are back: it may run with the other.
    private func realign(_ start: RotationState) async throws -> RotationState {
        var current = start
        guard current.phase == .idle, let secret = current.current else { return current }
        let members = current.members ?? []
        let known = try await coturn.secrets() + [secret] + current.retiring.map(\.value)
        for consumer in consumers where members.contains(consumer.name) {
            let use = await consumer.inUse(candidates: known, now: now())
            let drifted = (current.drifted ?? []).contains(consumer.name)
            var leaving: TurnSecret?
            let other: String?
            switch use {
            case .signsWith(let used, let source) where used != secret:
                leaving = used
                other = "signs with \(used.fingerprint) (\(source)); coturn keeps accepting it while it does"
            // Its files lost the secret: written again. (An app that only answers nothing, such as a Prosody
            // whose module is off, is not rewritten on every run.)
            case .none(let reason) where consumer is SynapseSwitch || consumer is FileSwitch:
                other = "signs with no secret turnkeeper knows: \(reason)"
            default:
                other = nil
            }
            if let other {
                say(
                    "\(consumer.label) \(other), not with the current secret \(secret.fingerprint): its configuration "
                        + "changed since turnkeeper switched it (a restored backup, a re-applied snippet, configuration "
                        + "management). Switching it back")
                if !drifted {
                    current.drifted = (current.drifted ?? []) + [consumer.name]
                    try await state.save(current)
                }
            } else if drifted, case .signsWith(secret, _) = use {
                say(
                    "\(consumer.label)'s configuration names the current secret (\(secret.fingerprint)) again; switching "
                        + "it once more, as it may still run with the secret its configuration named before")
            } else {
                continue
            }
            // As its files are now (a restored file may set a longer lifetime), and as they will be.
            let before = await consumer.lifetimeNow() ?? 0
            let plan = try await consumer.preflight(for: secret, known: known)
            let lifetime = max(before, plan.lifetime)
            say(try await switchRecording(consumer, plan, from: current))
            // It may have handed out credentials signed with a retiring secret until now, or with the one it
            // leaves: one turnkeeper had retired already (and coturn has again) retires anew after them.
            let after = now() + lifetime + configuration.rotation.margin.seconds
            for index in current.retiring.indices where current.retiring[index].after < after {
                current.retiring[index].after = after
            }
            if let leaving, !current.retiring.contains(where: { $0.value == leaving }),
                (current.retired ?? []).contains(where: { $0.digest == RetiredSecret.digest(leaving) }),
                try await coturn.secrets().contains(leaving)
            {
                current.retiring.append(.init(value: leaving, after: after))
            }
            // What was kept for it waits its lifetime again, no longer as a failure.
            for index in current.retiring.indices where current.retiring[index].kept != nil {
                current.retiring[index].kept = nil
                current.retiring[index].failed = nil
            }
            if current.lastResult?.hasPrefix("failed") == true { current.lastResult = "ok" }
            current.setRestart(nil, of: consumer.name)
            current.drifted = current.drifted?.filter { $0 != consumer.name }
            if current.drifted?.isEmpty == true { current.drifted = nil }
            try await state.save(current)
        }
        return current
    }

    /// Why `secret` must stay in coturn now, read from the world: every consumer's files or answers (Synapse's
    /// configuration as Synapse reads it), never turnkeeper's state. nil when no consumer signs with it.
    func keepers(of secret: TurnSecret, _ state: RotationState) async -> String? {
        await keeping(secret, state).map(\.reason)
    }

    /// As `keepers`, and the consumers only whose running process (not its files) uses it: a restart ends that.
    private func keeping(_ secret: TurnSecret, _ state: RotationState) async -> (reason: String, restart: [String])? {
        var candidates = [secret] + [state.current, state.pending].compactMap { $0 } + state.retiring.map(\.value)
        candidates += ((try? await coturn.secrets()) ?? []).filter { !candidates.contains($0) }
        var reasons: [String] = []
        var restart: [String] = []
        for consumer in consumers {
            guard let keep = await consumer.keeps(secret, candidates: candidates, now: now()) else { continue }
            reasons.append(keep.reason)
            if keep.runningOnly { restart.append(consumer.name) }
        }
        return reasons.isEmpty ? nil : (reasons.joined(separator: "; "), restart)
    }

    /// The longest any consumer's credentials stay valid as its files are now, in seconds.
    private func longestLifetime() async -> Int64 {
        var longest: Int64 = 0
        for consumer in consumers { longest = max(longest, await consumer.lifetimeNow() ?? 0) }
        return longest
    }

    /// What `rotate --resume` says when it found nothing to do.
    private func nothingToResume(_ state: RotationState) async -> String {
        guard let secret = state.current else {
            return "nothing to resume: no rotation is in progress and Synapse has no TURN secret yet; "
                + "`turnkeeper rotate` sets one"
        }
        let due = state.retiring.map(\.after).min().map {
            " The next retirement is due at \(WallClock.utcString(seconds: $0))."
        }
        return
            "nothing to resume: no rotation is in progress, every consumer (\(consumers.map(\.label).joined(separator: ", "))) "
            + "signs with the current secret (\(secret.fingerprint)) and coturn's store holds what it must."
            + (due ?? " No old secret is waiting to be retired.")
    }

    /// Whether a run changed nothing turnkeeper saves.
    static func unchanged(_ before: RotationState, _ after: RotationState) -> Bool {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? encoder.encode(before)) == (try? encoder.encode(after))
    }

    /// Removes each old secret that is due from coturn, and proves with an allocation at coturn.verify_uri that
    /// coturn refuses it. One still accepted stays in `retiring`, marked failed, and the run fails (exit 1).
    /// Before it is removed, every consumer is asked what it signs with now: one that a consumer still signs
    /// with, or whose use cannot be told, is kept, whatever turnkeeper's state says.
    private func retireDue(_ start: RotationState) async throws -> RotationState {
        var current = start
        let proof = RetirementProof(configuration: configuration, probe: probe, now: environment.now)
        var failed: [String] = []
        var kept: [String] = []
        for retiree in current.retiring where retiree.after <= now() {
            let fingerprint = retiree.value.fingerprint
            if let (reason, restart) = await keeping(retiree.value, current) {
                let failure = "kept in coturn: \(reason)"
                // Once nothing uses it any more, credentials signed with it until then must expire first.
                let after = now() + (await longestLifetime()) + configuration.rotation.margin.seconds
                if let index = current.retiring.firstIndex(where: { $0.value == retiree.value }) {
                    current.retiring[index].failed = failure
                    current.retiring[index].kept = reason
                    current.retiring[index].after = max(current.retiring[index].after, after)
                }
                // A process running with files changed since it started is restarted by the next run.
                let members = current.members ?? []
                for name in restart where members.contains(name) && !(current.drifted ?? []).contains(name) {
                    current.drifted = (current.drifted ?? []) + [name]
                }
                current.lastResult = "failed: \(fingerprint) is not retired: \(failure)"
                try await persist(current, step: 5, "did not retire \(fingerprint): \(failure)", boundary: false)
                kept.append("\(fingerprint) (\(reason))")
                continue
            }
            if let index = current.retiring.firstIndex(where: { $0.value == retiree.value }) {
                current.retiring[index].kept = nil
            }
            // Never retire the secret Synapse uses, whatever the state says.
            if retiree.value != current.current {
                if let failure = await proof.retire(retiree.value, from: coturn, control: current.current) {
                    if let index = current.retiring.firstIndex(where: { $0.value == retiree.value }) {
                        current.retiring[index].failed = failure
                    }
                    current.lastResult = "failed: \(fingerprint) is not retired: \(failure)"
                    try await persist(current, step: 5, "could not retire \(fingerprint): \(failure)", boundary: false)
                    failed.append(fingerprint)
                    continue
                }
            }
            current.retiring.removeAll { $0.value == retiree.value }
            current.retired = RetiredSecret.remember(retiree.value, at: now(), in: current.retired)
            if retiree.failed != nil { current.lastResult = "ok" }
            try await persist(
                current, step: 5,
                "retired \(fingerprint): coturn refuses it at \(probe.uri), and no credential signed with it is valid "
                    + "any more")
        }
        for retiree in current.retiring where retiree.failed == nil {
            say("\(retiree.value.fingerprint) retires at \(WallClock.utcString(seconds: retiree.after))")
        }
        guard kept.isEmpty else {
            throw TurnkeeperError(
                .retirementFailed,
                "not retired, as it is still in use: \(kept.joined(separator: ", ")). coturn keeps accepting it. Make "
                    + "the file named there give the current secret again (remove the line if turnkeeper's own file "
                    + "sets the key), then run `turnkeeper rotate --resume` (or, with the daemon, `systemctl reload "
                    + "turnkeeper`): it switches that app back, restarting it, and retires the old secret once nothing "
                    + "signs with it.")
        }
        guard failed.isEmpty else {
            throw TurnkeeperError(
                .retirementFailed,
                "retiring \(failed.joined(separator: ", ")) failed: coturn still accepts it, or its refusal could not "
                    + "be proven (see step 5 above; `turnkeeper status` keeps it listed). No new rotation starts "
                    + "until it is retired; fix the cause, then run `turnkeeper rotate --resume`."
            )
        }
        return current
    }

    /// First run: take the secret Synapse uses now as current, and make sure coturn accepts it.
    private func loadOrAdopt(announce: Bool) async throws -> RotationState {
        if let saved = try await state.load() { return saved }
        var adopted = RotationState()
        if let secret = try await synapse.currentSecret() {
            try await coturn.add(secret)
            adopted.current = secret
            try await persist(
                adopted, step: 0, "adopted Synapse's current secret (\(secret.fingerprint)); coturn accepts it")
            if announce { say(Self.listedConsumersNotice(consumers)) }
        } else {
            try await persist(adopted, step: 0, "Synapse has no TURN secret yet; the first rotation will set one")
        }
        return adopted
    }

    /// Said at adoption and before the first rotation: an app that signs with the secret but is not listed
    /// stops working when its secret is retired, and turnkeeper cannot see it.
    static func listedConsumersNotice(_ consumers: [any ConsumerSwitch]) -> String {
        "turnkeeper switches these apps to each new secret: \(consumers.map(\.label).joined(separator: ", ")). Every "
            + "other app that signs TURN credentials with this coturn's secret (Jitsi/Prosody, Nextcloud Talk, "
            + "LiveKit, …) must be listed under consumers: in turnkeeper.yaml before the old secret is retired, or "
            + "its calls fail from then on (docs/consumers.md; `turnkeeper check` lists what coturn accepts)"
    }

    /// Saves `saved`, says what the step did, and tells the observer; at a `boundary`, a shutdown may stop the
    /// rotation here.
    private func persist(_ saved: RotationState, step: Int, _ message: String, boundary: Bool = true) async throws {
        try await state.save(saved)
        say("step \(step): \(message)")
        try await environment.observe(.saved(step: step))
        if boundary && environment.shouldStop() {
            say("stopping after step \(step) as asked; the next start resumes from phase \(saved.phase.rawValue)")
            throw RotationStopped(phase: saved.phase.rawValue)
        }
    }
}

/// coturn's store for one run: listed the first time it is asked, then kept as the run's own adds and removes
/// change it. The run holds the state lock, so no other turnkeeper run writes the store meanwhile; what a
/// consumer signs with is still read from the consumer at each step.
final class ListedOnce: CoturnSecretStore {
    private let store: any CoturnSecretStore
    private let listed = Mutex<[TurnSecret]?>(nil)

    init(_ store: any CoturnSecretStore) { self.store = store }

    func secrets() async throws -> [TurnSecret] {
        if let known = listed.withLock({ $0 }) { return known }
        let read = try await store.secrets()
        listed.withLock { $0 = read }
        return read
    }

    func add(_ secret: TurnSecret) async throws {
        try await store.add(secret)
        listed.withLock { list in
            if list?.contains(secret) == false { list?.append(secret) }
        }
    }

    func remove(_ secret: TurnSecret) async throws {
        try await store.remove(secret)
        listed.withLock { $0?.removeAll { $0 == secret } }
    }

    func proveWritable() async throws { try await store.proveWritable() }
}
