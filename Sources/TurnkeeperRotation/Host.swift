public import TurnkeeperConfiguration
import TurnkeeperCore
package import TurnkeeperCredentials
import TurnkeeperExecution
public import TurnkeeperStores
package import TurnkeeperSwitching
package import TurnkeeperSynapse

/// This machine as turnkeeper.yaml describes it, built once per configuration (at start, and again on each
/// SIGHUP): the part it plays, coturn's store (none on the Synapse host of two), the allocation that asks coturn,
/// and from them the rotation, the checks, the inventory and what Synapse signs with. turnkeeper.yaml's `role`
/// is read here and nowhere else, so the single-host and two-host code cannot reach each other's cases.
public struct Host: Sendable {
    public let configuration: Configuration
    package let part: Part
    /// Where an allocation proves what coturn accepts (coturn.verify_uri).
    let probe: any CoturnProbe

    /// What this host does in a rotation, with what only that part has.
    package enum Part: Sendable {
        /// Synapse and coturn's store here; random secrets.
        case single(coturn: CoturnAccess)
        /// The TURN host of two: coturn's store holds the epochs' derived secrets.
        case turnHost(Configuration.Derivation, coturn: CoturnAccess)
        /// The Synapse host of two: Synapse switches to each epoch's secret. No coturn store here.
        case synapseHost(Configuration.Derivation)
    }

    /// The real store, probe and Synapse this configuration names.
    public init(_ configuration: Configuration) {
        self.init(
            configuration, coturn: CoturnAccess(configuration),
            probe: AllocationProbe(uri: configuration.coturn.verifyURI))
    }

    /// With a store and a probe of the caller's: a test's in memory, or another process's. The role still comes
    /// from `configuration` (the Synapse host of two ignores the store).
    public init(_ configuration: Configuration, coturnStore: any CoturnSecretStore, probe: any CoturnProbe) {
        self.init(configuration, coturn: CoturnAccess(coturnStore), probe: probe)
    }

    init(_ configuration: Configuration, coturn: CoturnAccess, probe: any CoturnProbe) {
        self.configuration = configuration
        self.probe = probe
        switch configuration.role {
        case .single: part = .single(coturn: coturn)
        case .turnHost(let derivation): part = .turnHost(derivation, coturn: coturn)
        case .synapseHost(let derivation): part = .synapseHost(derivation)
        }
    }

    /// coturn's store; nil on the Synapse host of two, which has none.
    package var coturn: CoturnAccess? {
        switch part {
        case .single(let coturn), .turnHost(_, let coturn): coturn
        case .synapseHost: nil
        }
    }

    /// Whether turnkeeper writes coturn's store here: all but the Synapse host of two.
    public var managesCoturn: Bool { coturn != nil }

    /// Whether turnkeeper writes Synapse's files here: all but the TURN host of two.
    public var managesSynapse: Bool {
        if case .turnHost = part { return false }
        return true
    }

    package var derivation: Configuration.Derivation? {
        switch part {
        case .single: nil
        case .turnHost(let derivation, _), .synapseHost(let derivation): derivation
        }
    }

    /// The rotation this host runs: random secrets on a single host, derived epochs on either host of two.
    public func rotation(_ environment: RotationEnvironment) -> any SecretRotation {
        let synapse = SynapseSwitch(configuration: configuration, environment: environment.switching)
        return switch part {
        case .single(let coturn):
            SingleHostRotation(
                configuration: configuration, environment: environment, coturn: coturn.store, probe: probe,
                synapse: synapse)
        case .turnHost(let derivation, let coturn):
            EpochRotation(
                configuration: configuration, derivation: derivation, environment: environment,
                side: .turn(coturn.store), probe: probe, synapse: synapse)
        case .synapseHost(let derivation):
            EpochRotation(
                configuration: configuration, derivation: derivation, environment: environment, side: .synapse,
                probe: probe, synapse: synapse)
        }
    }

    /// This host's consumers in switching order: Synapse first where this host manages it, then the others as
    /// turnkeeper.yaml lists them.
    package func consumers(_ environment: RotationEnvironment) -> [any ConsumerSwitch] {
        let synapse: [any ConsumerSwitch] =
            managesSynapse ? [SynapseSwitch(configuration: configuration, environment: environment.switching)] : []
        return synapse + ConsumerSwitches.others(configuration, environment: environment.switching)
    }

    /// The names of those consumers, in the same order.
    package var consumerNames: [String] {
        (managesSynapse ? [Configuration.synapseConsumer] : []) + configuration.consumers.map(\.name)
    }

    /// What Synapse's files make it sign with, judged against turnkeeper's state on a single host (the two-host
    /// rotation judges its epoch itself); nil on the TURN host of two, which has no Synapse.
    public func synapseSigning(rotating: Bool) async throws -> SynapseSigning? {
        switch part {
        case .single: try await SynapseSigning.read(configuration, againstState: true, rotating: rotating)
        case .synapseHost: try await SynapseSigning.read(configuration, againstState: false, rotating: rotating)
        case .turnHost: nil
        }
    }

    /// How many secrets coturn's store holds now (for the metrics); nil on the Synapse host, which has none.
    public func coturnSecretCount() async throws -> Int? {
        guard let coturn else { return nil }
        return try await coturn.store.secrets().count
    }

    /// turnkeeper's files for Synapse, as `check` proves them writable.
    package var synapseFiles: SynapseSecretStore {
        SynapseSwitch(configuration: configuration, environment: .quiet).files
    }

    /// A rotation stopped part-way on a single host, from its state file: its phase and the consumers not switched
    /// yet; nil when none is in flight (or the state cannot be read).
    package func stoppedRotation() async -> (phase: String, waiting: [String])? {
        guard case .single = part,
            let state = try? await StateFile<RotationState>(
                directory: configuration.rotation.stateDirectory, name: "state.json"
            ).load(), state.phase != .idle
        else { return nil }
        let waiting = state.phase == .switching ? consumerNames.filter { !(state.switched ?? []).contains($0) } : []
        return (state.phase.rawValue, waiting)
    }

    /// The secrets turnkeeper generated or adopted and has not yet retired, from its state file.
    package func ownedSecrets() async throws -> [TurnSecret] {
        let directory = configuration.rotation.stateDirectory
        switch part {
        case .single:
            guard let saved = try await StateFile<RotationState>(directory: directory, name: "state.json").load()
            else { return [] }
            return [saved.current, saved.pending].compactMap { $0 } + saved.retiring.map(\.value)
        case .turnHost, .synapseHost:
            let saved = try await StateFile<EpochRotation.State>(directory: directory, name: "epochs.json").load()
            return saved?.added.map(\.value) ?? []
        }
    }
}

/// coturn's secret store as a host reaches it: `store` builds it at each use (passwords are read from their
/// files then, so a changed file is picked up without a restart); `open` builds it once, for a caller that
/// tells a store it cannot build (exit 2) from one that does not answer (a finding).
package struct CoturnAccess: Sendable {
    package let open: @Sendable () async throws -> any CoturnSecretStore

    init(_ configuration: Configuration) {
        open = { try await Blocking.run { try CoturnStores.make(configuration) } }
    }

    /// An already built store (tests: in memory).
    init(_ store: any CoturnSecretStore) { open = { store } }

    package var store: any CoturnSecretStore { Lazy(open: open) }

    private struct Lazy: CoturnSecretStore {
        let open: @Sendable () async throws -> any CoturnSecretStore

        func secrets() async throws -> [TurnSecret] { try await open().secrets() }
        func add(_ secret: TurnSecret) async throws { try await open().add(secret) }
        func remove(_ secret: TurnSecret) async throws { try await open().remove(secret) }
        func proveWritable() async throws { try await open().proveWritable() }
    }
}
