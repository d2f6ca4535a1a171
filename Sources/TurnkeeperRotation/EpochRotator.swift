import Foundation
import Glibc
public import TurnkeeperCore
public import TurnkeeperCredentials
import TurnkeeperSynapse
import TurnkeeperTURNClient

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
public final class EpochRotator {
    public let configuration: Configuration
    private let say: (String) -> Void
    private let now: () -> Int64

    struct State: Codable {
        struct Entry: Codable, Equatable {
            var epoch: Int64
            /// The root key's fingerprint: during a root key rotation, two keys' secrets are held.
            var key: String
            var value: String
            /// Why taking it out of coturn last failed (coturn still accepts it); it is retried.
            var failed: String?
        }

        /// TURN host: the derived secrets turnkeeper put into coturn's store, and only those.
        var added: [Entry] = []
        /// Synapse host: the epoch Synapse was last switched to.
        var synapseEpoch: Int64?
    }

    var statePath: String { configuration.rotation.stateDirectory + "/epochs.json" }

    public init(configuration: Configuration, say: @escaping (String) -> Void, now: @escaping () -> Int64) {
        self.configuration = configuration
        self.say = say
        self.now = now
    }

    private var derivation: Configuration.Derivation {
        get throws(TurnkeeperError) {
            guard let derivation = configuration.derivation else {
                throw TurnkeeperError(.invalidArgument, "\(configuration.path): role single has no derived secrets")
            }
            return derivation
        }
    }

    private func secrets(keyFile: String) throws(TurnkeeperError) -> EpochSecrets {
        let key = try SecretFile.readRootKey(keyFile)
        return EpochSecrets(
            rootKey: key, realm: configuration.coturn.realm, length: try derivation.epoch.seconds)
    }

    /// The epoch now, and when the next begins (Unix seconds, on this host's clock).
    public func schedule() throws(TurnkeeperError) -> (epoch: Int64, next: Int64) {
        let derived = try secrets(keyFile: try derivation.rootKeyFile)
        let epoch = derived.epoch(at: now())
        return (epoch, derived.start(of: epoch + 1))
    }

    /// This epoch's secret, to mint the daemon's probe credentials. Never printed.
    public func currentSecret() throws -> TurnSecret {
        let derived = try secrets(keyFile: try derivation.rootKeyFile)
        return try derived.secret(for: derived.epoch(at: now()))
    }

    /// Brings this host in line with the current epoch.
    public func sync() async throws {
        let lock = try Lock(directory: configuration.rotation.stateDirectory)
        defer { lock.release() }
        switch configuration.role {
        case .turn: try await syncTURN()
        case .synapse: try await syncSynapse()
        case .single: throw TurnkeeperError(.invalidArgument, "role single rotates with random secrets")
        }
    }

    private func syncTURN() async throws {
        let derivation = try derivation
        var keys = [try secrets(keyFile: derivation.rootKeyFile)]
        if let previous = derivation.previousRootKeyFile { keys.append(try secrets(keyFile: previous)) }
        let epoch = keys[0].epoch(at: now())
        var wanted: [State.Entry] = []
        for (index, key) in keys.enumerated() {
            let fingerprint = key.keyFingerprint
            for e in (epoch - 1)...(epoch + 1) {
                let secret = try key.secret(for: e)
                wanted.append(
                    .init(
                        epoch: e, key: fingerprint + (index == 0 ? "" : " (previous root key)"),
                        value: secret.withExposedBytes { String(decoding: $0, as: UTF8.self) }))
            }
        }
        var state = try load()
        let store = try Rotator(configuration: configuration, say: say).coturnSecrets()
        for entry in wanted where !state.added.contains(where: { $0.value == entry.value }) {
            try await store.add(try TurnSecret(adopting: entry.value, source: statePath))
            state.added.append(entry)
            try save(state)
            say(
                "coturn accepts epoch \(entry.epoch)'s secret (\(try TurnSecret(adopting: entry.value, source: statePath).fingerprint))"
            )
        }
        // An old epoch's secret is retired only once an allocation signed with it is refused at verify_uri.
        var failed: [String] = []
        for entry in state.added where !wanted.contains(where: { $0.value == entry.value }) {
            let secret = try TurnSecret(adopting: entry.value, source: statePath)
            if let failure = await RetirementProof(configuration: configuration).retire(secret, from: store) {
                if let index = state.added.firstIndex(where: { $0.value == entry.value }) {
                    state.added[index].failed = failure
                }
                try save(state)
                say("could not retire epoch \(entry.epoch)'s secret (\(secret.fingerprint)): \(failure)")
                failed.append("epoch \(entry.epoch)'s secret (\(secret.fingerprint))")
                continue
            }
            state.added.removeAll { $0.value == entry.value }
            try save(state)
            say(
                "retired epoch \(entry.epoch)'s secret (\(secret.fingerprint)): coturn refuses it at "
                    + configuration.coturn.verifyURI)
        }
        say("epoch \(epoch): coturn accepts epochs \(epoch - 1) to \(epoch + 1)")
        guard failed.isEmpty else {
            throw TurnkeeperError(
                .checkFailed,
                "retiring \(failed.joined(separator: ", ")) failed: coturn still accepts it, or its refusal could not "
                    + "be proven (see above; `turnkeeper status` lists it). Fix the cause; the next run retries.")
        }
    }

    private func syncSynapse() async throws {
        let derived = try secrets(keyFile: try derivation.rootKeyFile)
        let epoch = derived.epoch(at: now())
        let secret = try derived.secret(for: epoch)
        let paths = configuration.synapse.configPaths
        let current = try await Blocking.run { try SynapseConfig.load(paths) }.turnSecret
        var state = try load()
        // Done only when this epoch's switch finished (its restart and checks passed). Files that already hold
        // the secret without that mean a switch failed after writing them: Synapse may still use the old one.
        if current == secret && state.synapseEpoch == epoch { return }
        if current == secret {
            say("Synapse's files hold epoch \(epoch)'s secret, but its switch did not finish; doing it again")
        }
        let rotator = Rotator(configuration: configuration, say: say, now: now)
        do {
            try await rotator.verify(secret)
        } catch let error as TURNClientError {
            if case .credentialsRejected = error.kind {
                throw TurnkeeperError(
                    .checkFailed,
                    "coturn at \(configuration.coturn.verifyURI) refuses epoch \(epoch)'s secret (\(secret.fingerprint)), "
                        + "so Synapse keeps its current one. Is turnkeeper running on the TURN host, with the same root "
                        + "key, realm and epoch length? `turnkeeper status` there shows its epoch.")
            }
            // coturn unreachable: calls fail either way, and switching now means both hosts agree the moment
            // the TURN host is back.
            say("coturn at \(configuration.coturn.verifyURI) did not answer (\(error)); switching Synapse anyway")
        }
        try await rotator.switchSynapse(to: secret)
        state.synapseEpoch = epoch
        try save(state)
        say("epoch \(epoch): " + Rotator.switched(to: secret, checked: configuration.synapse.homeserver != nil))
    }

    /// For `status` and the daemon's metrics: the epoch as a rotation.
    public func status() throws -> RotationStatus {
        let (epoch, next) = try schedule()
        let length = try derivation.epoch.seconds
        let state = try load()
        let current: String?
        switch configuration.role {
        case .synapse:
            current = try SynapseConfig.load(configuration.synapse.configPaths).turnSecret?.fingerprint
        default:
            current = try secrets(keyFile: try derivation.rootKeyFile).secret(for: epoch).fingerprint
        }
        // Each epoch by its own secret's fingerprint (the root key's is the same for all of them).
        let accepted = state.added.sorted { $0.epoch < $1.epoch }.map { entry in
            let fingerprint = (try? TurnSecret(adopting: entry.value, source: statePath))?.fingerprint ?? "none"
            let previous = entry.key.hasSuffix(" (previous root key)") ? ", previous root key" : ""
            let failed = entry.failed == nil ? "" : ", not retired yet"
            return "epoch \(entry.epoch) (\(fingerprint)\(previous)\(failed))"
        }
        return RotationStatus(
            phase: "idle", current: current, retiring: [], lastRotation: epoch * length,
            currentAgeSeconds: now() - epoch * length, nextRotationDue: next,
            lastResult: configuration.role == .turn
                ? "epoch \(epoch); coturn accepts " + accepted.joined(separator: ", ")
                : "epoch \(epoch); Synapse switched at epoch \(state.synapseEpoch.map(String.init) ?? "none yet")")
    }

    private func load() throws -> State {
        guard access(statePath, F_OK) == 0 else { return State() }
        let file = try FileContents.read(statePath, limit: 1 << 20)
        do {
            return try JSONDecoder().decode(State.self, from: Data(file.bytes))
        } catch {
            throw TurnkeeperError(
                .unreadableFile, "\(statePath) is not a turnkeeper epoch state file (\(error)); nothing was changed.")
        }
    }

    private func save(_ state: State) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        try AtomicFile.write(
            Array(try encoder.encode(state)), to: statePath, permissions: 0o600, maximumPermissions: 0o600,
            existing: .replace)
    }
}

/// The clock rotation decisions use: the wall clock, shifted by TURNKEEPER_TEST_CLOCK_OFFSET_SECONDS when the
/// tests set it to give two hosts skewed clocks (docs/operations.md, testing switches).
public enum RotationClock {
    public static func now() -> Int64 {
        WallClock.nowSeconds()
            + (getenv("TURNKEEPER_TEST_CLOCK_OFFSET_SECONDS").flatMap { Int64(String(cString: $0)) } ?? 0)
    }
}
