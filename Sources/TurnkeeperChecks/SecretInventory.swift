import TurnkeeperConfiguration
import TurnkeeperCore
import TurnkeeperCredentials
import TurnkeeperExecution
public import TurnkeeperRotation
import TurnkeeperStores
import TurnkeeperSwitching
import TurnkeeperSynapse

/// Every secret coturn would accept on this host, where each comes from, whether turnkeeper owns it, and which
/// configured consumer signs with it; and each consumer's view. turnkeeper removes from coturn only the secrets
/// it generated or adopted (its state files hold them); one it does not own is reported, never removed.
public struct SecretInventory: Sendable, Codable {
    public struct Accepted: Sendable, Codable {
        public var fingerprint: String
        /// "coturn's SQLite database", "/etc/turnserver.conf, line 12 (static-auth-secret)".
        public var origin: String
        /// turnkeeper generated or adopted it, and removes it when it retires.
        public var managed: Bool
        /// The consumers that sign with it.
        public var usedBy: [String]
    }

    public struct Consumer: Sendable, Codable {
        public var name: String
        public var label: String
        /// The secret it signs with, when that can be told.
        public var fingerprint: String?
        /// How that was told, or why it could not be.
        public var source: String
        /// Whether coturn accepts that secret; nil on a host that cannot see coturn's store.
        public var accepted: Bool?
        public var lifetimeSeconds: Int64?
    }

    /// nil on the Synapse host of two, which does not see coturn's store.
    public var accepted: [Accepted]?
    public var consumers: [Consumer]

    /// Reads coturn's store, turnserver.conf's static-auth-secret lines, turnkeeper's state and each consumer.
    /// Changes nothing.
    package static func take(_ host: Host) async throws -> SecretInventory {
        let configuration = host.configuration
        let environment = RotationEnvironment.quiet
        let owned = try await host.ownedSecrets()
        var found: [(secret: TurnSecret, origin: String)] = []
        if let coturn = host.coturn {
            let conf = try await Blocking.run { try TurnserverConf.read(configuration) }
            if case .config = configuration.coturn.store {
                for (line, secret) in conf?.secrets ?? [] {
                    found.append(
                        (
                            secret,
                            "\(conf?.path ?? "turnserver.conf"), line \(line) (static-auth-secret, coturn.store config)"
                        ))
                }
            } else {
                let kind = configuration.coturn.store.label
                for secret in try await coturn.store.secrets() {
                    found.append((secret, "coturn's \(kind) user database, realm \(configuration.coturn.realm)"))
                }
                for (line, secret) in conf?.secrets ?? [] {
                    found.append((secret, "\(conf?.path ?? "turnserver.conf"), line \(line) (static-auth-secret)"))
                }
            }
        }
        var candidates = found.map(\.secret) + owned
        // Derived secrets: the epochs around now, which consumers on either host may sign with.
        if let derivation = host.derivation {
            let key = try await Blocking.run { try SecretFile.readRootKey(derivation.rootKeyFile) }
            let derived = EpochSecrets(
                rootKey: key, realm: configuration.coturn.realm, length: derivation.epoch.seconds)
            let epoch = derived.epoch(at: environment.now())
            candidates += try ((epoch - 1)...(epoch + 1)).map { try derived.secret(for: $0) }
        }
        var consumers: [Consumer] = []
        var users: [String: [String]] = [:]
        let switches = host.consumers(environment)
        for consumer in switches {
            let use = await consumer.inUse(candidates: candidates, now: environment.now())
            var view = Consumer(name: consumer.name, label: consumer.label, fingerprint: nil, source: "", accepted: nil)
            switch use {
            case .signsWith(let secret, let source):
                view.fingerprint = secret.fingerprint
                view.source = source
                if host.managesCoturn { view.accepted = found.contains { $0.secret == secret } }
                users[secret.fingerprint, default: []].append(consumer.label)
            case .none(let reason), .unknown(let reason):
                view.source = reason
            }
            if consumer.name == Configuration.synapseConsumer {
                view.lifetimeSeconds = try? await Blocking.run {
                    try SynapseConfig.load(configuration.synapse.configPaths).turnUserLifetime.seconds
                }
            } else {
                view.lifetimeSeconds =
                    configuration.consumers.first { $0.name == consumer.name }?.credentialLifetime.seconds
            }
            consumers.append(view)
        }
        let accepted: [Accepted]? =
            host.managesCoturn
            ? found.map { entry in
                Accepted(
                    fingerprint: entry.secret.fingerprint, origin: entry.origin,
                    managed: owned.contains(entry.secret), usedBy: users[entry.secret.fingerprint] ?? [])
            } : nil
        return SecretInventory(accepted: accepted, consumers: consumers)
    }
}

extension Host {
    /// Every secret coturn accepts here and each consumer's view (``SecretInventory``). Changes nothing.
    public func inventory() async throws -> SecretInventory { try await SecretInventory.take(self) }
}
