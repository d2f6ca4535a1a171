import TurnkeeperConfiguration
import TurnkeeperCore
import TurnkeeperRotation

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

extension Reconciliation {
    /// What `check` says of drift between coturn's store and turnkeeper's state; changes nothing.
    static func findings(_ host: Host) async -> [Checker.Finding] {
        let configuration = host.configuration
        guard let drift = try? await host.rotation(.quiet).reconcile(repair: false),
            !drift.isEmpty
        else { return [] }
        return [
            Checker.Finding(
                ok: false, summary: drift.summary + ".",
                fix: "Run `\(configuration.command("rotate --resume"))`, which puts the store right (`turnkeeper run` "
                    + "does it within one daemon.probe_interval). Then keep the store from losing data: Redis with "
                    + "`appendonly yes`, failover only to a replica that is in sync; PostgreSQL restored only from a "
                    + "backup newer than the last rotation (docs/separate-turn-host.md).")
        ]
    }
}
