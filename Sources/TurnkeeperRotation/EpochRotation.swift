import TurnkeeperConfiguration
import TurnkeeperCore
public import TurnkeeperCredentials
import TurnkeeperExecution
import TurnkeeperStores
import TurnkeeperSwitching

/// Rotation for a Synapse host and a separate TURN host that share a root key and nothing else
/// (docs/separate-turn-host.md). Each epoch's secret is derived (``EpochSecrets``), so each host acts on its
/// own clock:
///
/// - the TURN host keeps the previous, current and next epochs' secrets in coturn's database;
/// - the Synapse host switches Synapse to the current epoch's secret when the epoch starts.
///
/// A host down through one epoch boundary costs nothing: the TURN host has the next epoch's secret already,
/// and keeps the previous one for a whole epoch. Clock skew up to an epoch minus Synapse's credential lifetime
/// is absorbed the same way.
public struct EpochRotation: SecretRotation {
    let configuration: Configuration
    let derivation: Configuration.Derivation
    let environment: RotationEnvironment
    let side: Side
    let probe: any CoturnProbe
    let synapse: SynapseSwitch
    /// The consumers besides Synapse on this host (either role may have them).
    let others: [any ConsumerSwitch]
    let state: StateFile<State>

    struct State: Codable, Sendable {
        struct Entry: Codable, Equatable, Sendable {
            var epoch: Int64
            /// The root key's fingerprint: during a root key rotation, two keys' secrets are held.
            var key: String
            var value: TurnSecret
            /// Why taking it out of coturn last failed (coturn still accepts it); it is retried.
            var failed: String?
            /// Unix seconds when it was put into coturn (nil in state files from before this was kept).
            var addedAt: Int64?
            /// Kept in coturn until then although its epoch is past: this host came back after missing epoch
            /// starts, and the Synapse host (which moves on only to a secret coturn has) may still sign with it.
            var heldUntil: Int64?
        }

        /// TURN host: the derived secrets turnkeeper put into coturn's store, and only those.
        var added: [Entry] = []
        /// Synapse host: the epoch Synapse was last switched to.
        var synapseEpoch: Int64?
        /// Synapse host: the last restart for a switch not yet finished, so that the daemon's retries do not
        /// restart Synapse again for the same failure (as on a single host).
        var synapseRestart: RestartRecord?
        /// Either host: the epoch each other consumer was last switched to, by name.
        var consumerEpochs: [String: Int64]?
        /// Either host: the last restart command of each other consumer for a switch not yet finished.
        var consumerRestarts: [String: RestartRecord]?
        /// TURN host: the epoch secrets retired from coturn, by digest, so a rolled-back store is put right.
        var retired: [RetiredSecret]?
        /// TURN host: the epoch of the last sync; more than one epoch behind means this host was away.
        var lastSyncEpoch: Int64?
    }

    /// Which of the two hosts this is, with what only that one has.
    enum Side: Sendable {
        /// coturn's store holds the epochs' secrets here.
        case turn(any CoturnSecretStore)
        /// Synapse switches to each epoch's secret here.
        case synapse
    }

    public var schedule: RotationScheduleKind { .epochs }

    init(
        configuration: Configuration, derivation: Configuration.Derivation, environment: RotationEnvironment,
        side: Side, probe: any CoturnProbe, synapse: SynapseSwitch,
        others: [any ConsumerSwitch]? = nil
    ) {
        self.configuration = configuration
        self.derivation = derivation
        self.environment = environment
        self.side = side
        self.probe = probe
        self.synapse = synapse
        self.others = others ?? ConsumerSwitches.others(configuration, environment: environment.switching)
        self.state = StateFile(directory: configuration.rotation.stateDirectory, name: "epochs.json")
    }

    private var say: @Sendable (String) -> Void { environment.say }
    private func now() -> Int64 { environment.now() }

    private func secrets(keyFile: String) async throws -> EpochSecrets {
        let key = try await Blocking.run { try SecretFile.readRootKey(keyFile) }
        return EpochSecrets(rootKey: key, realm: configuration.coturn.realm, length: derivation.epoch.seconds)
    }

    public func prepare() async throws { _ = try await status() }

    /// This epoch's secret, to mint the daemon's probe credentials. Never printed.
    public func currentSecret() async throws -> TurnSecret? {
        let derived = try await secrets(keyFile: derivation.rootKeyFile)
        return try derived.secret(for: derived.epoch(at: now()))
    }

    /// Brings this host in line with the current epoch, whatever the request.
    public func rotate(_ request: RotationRequest) async throws {
        let lock = try await Lock.take(configuration.rotation.stateDirectory)
        defer { lock.release() }
        switch side {
        case .turn(let coturn): try await syncTURN(coturn)
        case .synapse: try await syncSynapse()
        }
        try await syncOthers()
    }

    /// The previous (rotation.keep_previous_epochs of them), current and next epochs' secrets of each root key:
    /// what coturn must hold now.
    private func wantedEntries() async throws -> (epoch: Int64, entries: [State.Entry]) {
        var keys = [try await secrets(keyFile: derivation.rootKeyFile)]
        if let previous = derivation.previousRootKeyFile { keys.append(try await secrets(keyFile: previous)) }
        let epoch = keys[0].epoch(at: now())
        var wanted: [State.Entry] = []
        for (index, key) in keys.enumerated() {
            let fingerprint = key.keyFingerprint
            for e in (epoch - Int64(derivation.keepPreviousEpochs))...(epoch + 1) {
                wanted.append(
                    .init(
                        epoch: e, key: fingerprint + (index == 0 ? "" : " (previous root key)"),
                        value: try key.secret(for: e)))
            }
        }
        return (epoch, wanted)
    }

    public func reconcile(repair: Bool) async throws -> Reconciliation? {
        guard case .turn(let coturn) = side else { return nil }
        if repair {
            let lock = try await Lock.take(configuration.rotation.stateDirectory)
            defer { lock.release() }
            return try await reconcileTURN(coturn, repair: true)
        }
        return try await reconcileTURN(coturn, repair: false)
    }

    /// How far back a past epoch's derived secret is recognised in the store (a backup this old may be restored).
    static let staleEpochsRecognised: Int64 = 400

    /// The store against what turnkeeper put there and has not retired (this epoch's, and old ones held back for
    /// the Synapse host), against the secrets it retired, and against any past epoch's derived secret (a backup
    /// older than the retired list brings those back too); says and reports a repair.
    @discardableResult
    private func reconcileTURN(_ coturn: any CoturnSecretStore, repair: Bool) async throws -> Reconciliation {
        let (epoch, wanted) = try await wantedEntries()
        var saved = try await state.load() ?? State()
        let needed = saved.added.filter { $0.failed == nil }.map(\.value)
        var retired = saved.retired ?? []
        let oldest = wanted.map(\.epoch).min() ?? epoch
        var keys = [try await secrets(keyFile: derivation.rootKeyFile)]
        if let previous = derivation.previousRootKeyFile { keys.append(try await secrets(keyFile: previous)) }
        let held = try await coturn.secrets()
        let known = Set(retired.map(\.digest))
        var stale: [RetiredSecret] = []
        if !held.isEmpty {
            let heldDigests = Set(held.map(RetiredSecret.digest))
            for key in keys {
                for past in max(0, oldest - Self.staleEpochsRecognised)..<oldest {
                    let secret = try key.secret(for: past)
                    let digest = RetiredSecret.digest(secret)
                    if heldDigests.contains(digest) && !known.contains(digest) {
                        stale.append(RetiredSecret(secret, at: now()))
                    }
                }
            }
        }
        retired += stale
        let result = try await Reconciliation.run(store: coturn, needed: needed, retired: retired, repair: repair)
        if repair && !result.removedDigests.isEmpty {
            saved.retired = RetiredSecret.markRemoved(result.removedDigests, in: saved.retired)
            try await state.save(saved)
        }
        if repair && !result.isEmpty {
            say(result.summary)
            try await environment.observe(.storeRepaired(result))
        }
        return result
    }

    private func syncTURN(_ coturn: any CoturnSecretStore) async throws {
        let (epoch, wanted) = try await wantedEntries()
        // What the store lost since is added back, and what a rollback brought back is removed, first.
        try await reconcileTURN(coturn, repair: true)
        var current = try await state.load() ?? State()
        for var entry in wanted where !current.added.contains(where: { $0.value == entry.value }) {
            try await coturn.add(entry.value)
            entry.addedAt = now()
            current.added.append(entry)
            try await state.save(current)
            say("coturn accepts epoch \(entry.epoch)'s secret (\(entry.value.fingerprint))")
        }
        // Back after missing epoch starts: the Synapse host may still sign with an old epoch's secret (it could not
        // move on while coturn lacked the new ones), so the old ones stay until it can have caught up.
        if let last = current.lastSyncEpoch, epoch - last >= 2 {
            let catchUp =
                derivation.catchUp?.seconds ?? configuration.daemon.retryMax.seconds + derivation.epoch.seconds
            for index in current.added.indices
            where current.added[index].heldUntil == nil
                && !wanted.contains(where: { $0.value == current.added[index].value })
            {
                current.added[index].heldUntil = now() + catchUp
            }
        }
        current.lastSyncEpoch = epoch
        try await state.save(current)
        // An old epoch's secret is retired only once an allocation signed with it is refused at verify_uri.
        let proof = RetirementProof(configuration: configuration, probe: probe, now: environment.now)
        var failed: [String] = []
        for entry in current.added where !wanted.contains(where: { $0.value == entry.value }) {
            let secret = entry.value
            if let until = entry.heldUntil, until > now() {
                say(
                    "keeps epoch \(entry.epoch)'s secret (\(secret.fingerprint)) until \(WallClock.utcString(seconds: until)): "
                        + "this host was away across epoch starts, and the Synapse host may still sign with it "
                        + "until it catches up (rotation.catch_up)")
                continue
            }
            let control = wanted.first { $0.epoch == epoch }?.value
            if let failure = await proof.retire(secret, from: coturn, control: control) {
                if let index = current.added.firstIndex(where: { $0.value == secret }) {
                    current.added[index].failed = failure
                }
                try await state.save(current)
                say("could not retire epoch \(entry.epoch)'s secret (\(secret.fingerprint)): \(failure)")
                failed.append("epoch \(entry.epoch)'s secret (\(secret.fingerprint))")
                continue
            }
            current.added.removeAll { $0.value == secret }
            current.retired = RetiredSecret.remember(secret, at: now(), in: current.retired)
            try await state.save(current)
            say("retired epoch \(entry.epoch)'s secret (\(secret.fingerprint)): coturn refuses it at \(probe.uri)")
        }
        say("epoch \(epoch): coturn accepts epochs \(epoch - Int64(derivation.keepPreviousEpochs)) to \(epoch + 1)")
        guard failed.isEmpty else {
            throw TurnkeeperError(
                .retirementFailed,
                "retiring \(failed.joined(separator: ", ")) failed: coturn still accepts it, or its refusal could not "
                    + "be proven (see above; `turnkeeper status` lists it). Fix the cause; the next run retries.")
        }
    }

    private func syncSynapse() async throws {
        let derived = try await secrets(keyFile: derivation.rootKeyFile)
        let epoch = derived.epoch(at: now())
        let secret = try derived.secret(for: epoch)
        let inUse = try await synapse.currentSecret()
        var current = try await state.load() ?? State()
        // Done only when this epoch's switch finished (its restart and checks passed). Files that already hold
        // the secret without that mean a switch failed after writing them: Synapse may still use the old one.
        if inUse == secret && current.synapseEpoch == epoch { return }
        if inUse == secret {
            say("Synapse's files hold epoch \(epoch)'s secret, but its switch did not finish; doing it again")
        }
        do {
            try await probe.verify(secret, now: now())
        } catch let error as TurnkeeperError where error.code == .verificationFailed {
            throw TurnkeeperError(
                .verificationFailed,
                "coturn at \(probe.uri) refuses epoch \(epoch)'s secret (\(secret.fingerprint)), so Synapse keeps its "
                    + "current one. Is turnkeeper running on the TURN host, with the same root key, realm and epoch "
                    + "length? `turnkeeper status` there shows its epoch.")
        } catch {
            // coturn unreachable: calls fail either way, and switching now means both hosts agree the moment
            // the TURN host is back.
            say("coturn at \(probe.uri) did not answer (\(error)); switching Synapse anyway")
        }
        let expected = try await synapse.preflight(for: secret)
        let saved = current
        _ = try await synapse.switchSynapse(
            to: secret, expected: expected, previous: current.synapseRestart, probe: probe
        ) { restart in
            var recorded = saved
            recorded.synapseRestart = restart
            try await state.save(recorded)
        }
        current.synapseEpoch = epoch
        current.synapseRestart = nil
        try await state.save(current)
        say("epoch \(epoch): " + synapse.switchedMessage(to: secret))
    }

    /// Switches the consumers besides Synapse to the current epoch's secret, each once per epoch and saved on
    /// its own. coturn accepts the previous, current and next epochs, so the order of the hosts does not matter.
    private func syncOthers() async throws {
        guard !others.isEmpty else { return }
        let derived = try await secrets(keyFile: derivation.rootKeyFile)
        let epoch = derived.epoch(at: now())
        let secret = try derived.secret(for: epoch)
        let known = try ((epoch - 1)...(epoch + 1)).map { try derived.secret(for: $0) }
        var current = try await state.load() ?? State()
        for consumer in others where current.consumerEpochs?[consumer.name] != epoch {
            let plan = try await consumer.preflight(for: secret, known: known)
            let saved = current
            let message = try await consumer.switchTo(
                plan, previous: current.consumerRestarts?[consumer.name], probe: probe
            ) { restart in
                var recorded = saved
                recorded.consumerRestarts = (recorded.consumerRestarts ?? [:]).merging([consumer.name: restart]) { $1 }
                try await state.save(recorded)
            }
            current.consumerEpochs = (current.consumerEpochs ?? [:]).merging([consumer.name: epoch]) { $1 }
            current.consumerRestarts?[consumer.name] = nil
            try await state.save(current)
            say("epoch \(epoch): \(message)")
            try await environment.observe(.consumerSwitched(consumer.name))
        }
    }

    /// For `status` and the daemon's metrics: the epoch as a rotation.
    public func status() async throws -> RotationStatus {
        let derived = try await secrets(keyFile: derivation.rootKeyFile)
        let epoch = derived.epoch(at: now())
        let next = derived.start(of: epoch + 1)
        let length = derivation.epoch.seconds
        let saved = try await state.load() ?? State()
        let current: String?
        switch side {
        case .synapse: current = try await synapse.currentSecret()?.fingerprint
        case .turn: current = try derived.secret(for: epoch).fingerprint
        }
        // Each epoch by its own secret's fingerprint (the root key's is the same for all of them).
        let accepted = saved.added.sorted { $0.epoch < $1.epoch }.map { entry in
            let previous = entry.key.hasSuffix(" (previous root key)") ? ", previous root key" : ""
            let failed = entry.failed == nil ? "" : ", not retired yet"
            return "epoch \(entry.epoch) (\(entry.value.fingerprint)\(previous)\(failed))"
        }
        let turnHost = if case .turn = side { true } else { false }
        return RotationStatus(
            phase: "idle", current: current, retiring: [], lastRotation: epoch * length,
            currentAgeSeconds: now() - epoch * length, nextRotationDue: next,
            lastResult: turnHost
                ? "epoch \(epoch); coturn accepts " + accepted.joined(separator: ", ")
                : "epoch \(epoch); Synapse switched at epoch \(saved.synapseEpoch.map(String.init) ?? "none yet")",
            epoch: epoch, synapseEpoch: turnHost ? nil : saved.synapseEpoch)
    }
}
