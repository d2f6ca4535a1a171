import TurnkeeperConfiguration
import TurnkeeperCore
import TurnkeeperCredentials
import TurnkeeperExecution
import TurnkeeperStores
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
    static func take(_ host: Host) async throws -> SecretInventory {
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

extension SecretInventory {
    /// What `check` reports: each consumer's view, and every secret coturn accepts that no consumer uses.
    static func findings(_ host: Host) async -> [Checker.Finding] {
        do {
            return try await take(host).findings(host.configuration)
        } catch {
            return [
                .init(
                    ok: false,
                    summary: "what coturn accepts and what each consumer signs with could not be read: "
                        + ((error as? TurnkeeperError)?.reason ?? "\(error)"),
                    fix: "Do what the message says, then run check again.")
            ]
        }
    }

    func findings(_ configuration: Configuration) -> [Checker.Finding] {
        var findings: [Checker.Finding] = []
        for consumer in consumers {
            guard let fingerprint = consumer.fingerprint else {
                findings.append(
                    .init(
                        ok: false,
                        summary: "\(consumer.label): which secret it signs with cannot be told: \(consumer.source).",
                        fix: "Run `\(configuration.command("rotate --resume"))` (it writes every consumer's files), or "
                            + "fix the consumer's settings in \(configuration.path); see docs/consumers.md."))
                continue
            }
            let life = consumer.lifetimeSeconds.map { ", credentials valid \($0) s" } ?? ""
            // Synapse's own secret not being accepted is reported, with its causes, by check's Synapse checks.
            if consumer.accepted == false && consumer.name == Configuration.synapseConsumer { continue }
            if consumer.accepted == false {
                findings.append(
                    .init(
                        ok: false,
                        summary:
                            "\(consumer.label) signs with \(fingerprint) (\(consumer.source)), which coturn does not "
                            + "accept: its calls ring and never connect.",
                        fix:
                            "Run `\(configuration.command("rotate --resume"))`, which switches it to the secret coturn "
                            + "accepts; if that does not help, `\(configuration.command("status"))` shows where it stopped."
                    ))
            } else {
                let accepted = consumer.accepted == true ? ", which coturn accepts" : ""
                findings.append(
                    .init(
                        ok: true,
                        summary: "\(consumer.label) signs with \(fingerprint)\(accepted) (\(consumer.source)\(life))",
                        fix: nil))
            }
        }
        for entry in accepted ?? [] {
            if !entry.usedBy.isEmpty {
                findings.append(
                    .init(
                        ok: true,
                        summary: "coturn accepts \(entry.fingerprint) from \(entry.origin)"
                            + (entry.managed ? ", turnkeeper's" : ", not turnkeeper's") + "; used by "
                            + entry.usedBy.joined(separator: ", "),
                        fix: nil))
            } else if entry.managed {
                findings.append(
                    .init(
                        ok: true,
                        summary: "coturn accepts \(entry.fingerprint) from \(entry.origin), turnkeeper's; no consumer "
                            + "signs with it any more, and turnkeeper retires it when its credentials have expired "
                            + "(`\(configuration.command("status"))` says when)",
                        fix: nil))
            } else {
                findings.append(
                    .init(
                        ok: false,
                        summary: "coturn accepts \(entry.fingerprint) from \(entry.origin), which turnkeeper did not "
                            + "generate or adopt and no configured consumer signs with. turnkeeper never removes it.",
                        fix: "If an app signs with it (Jitsi/Prosody, Nextcloud Talk, LiveKit, …), list that app under "
                            + "consumers: in \(configuration.path) so that it rotates too (docs/consumers.md); if none "
                            + "does, remove it from coturn by hand: anyone who has it can relay through coturn."))
            }
        }
        return findings
    }
}
