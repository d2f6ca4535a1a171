import TurnkeeperConfiguration
import TurnkeeperCore
import TurnkeeperCredentials
import TurnkeeperCrypto
import TurnkeeperStores

/// What coturn's store should hold by turnkeeper's account, against what it holds: the secrets turnkeeper
/// still needs there (the current one, a pending one coturn already had, those inside their overlap), and those
/// it retired. A store that lost data (a Redis restarted without persistence, a failover to a lagging replica,
/// a restored dump) lacks some of the first; one rolled back holds some of the second again. Secrets of
/// neither kind are other apps' and never touched.
public struct Reconciliation: Sendable, Codable, Equatable {
    /// Fingerprints of needed secrets the store lacked (added back when repairing).
    public var restored: [String] = []
    /// Fingerprints of retired secrets the store held again (removed when repairing).
    public var removed: [String] = []
    /// True when the store was changed; false for a report only (`check`).
    public var repaired: Bool

    public var isEmpty: Bool { restored.isEmpty && removed.isEmpty }

    /// One line for the log or the terminal.
    public var summary: String {
        var parts: [String] = []
        if !restored.isEmpty {
            parts.append(
                "coturn's store lacked \(restored.joined(separator: ", ")), which turnkeeper still needs there (the "
                    + "store lost data: a restart without persistence, a failover to a lagging replica, a restored "
                    + "dump)" + (repaired ? "; added back" : ""))
        }
        if !removed.isEmpty {
            parts.append(
                "coturn's store held \(removed.joined(separator: ", ")) again, which turnkeeper had retired (the "
                    + "store was rolled back)" + (repaired ? "; removed" : ""))
        }
        return parts.joined(separator: "; ")
    }

    /// Compares and, with `repair`, brings `store` in line: adds each of `needed` it lacks, removes each
    /// secret whose digest is in `retired`.
    static func run(
        store: any CoturnSecretStore, needed: [TurnSecret], retired: [String], repair: Bool
    ) async throws -> Reconciliation {
        let held = try await store.secrets()
        var result = Reconciliation(repaired: repair)
        for secret in needed where !held.contains(secret) {
            if repair { try await store.add(secret) }
            result.restored.append(secret.fingerprint)
        }
        for secret in held where retired.contains(RetiredSecret.digest(secret)) && !needed.contains(secret) {
            if repair { try await store.remove(secret) }
            result.removed.append(secret.fingerprint)
        }
        return result
    }
}

/// A secret turnkeeper retired, remembered by its full SHA-256 (never the secret), so that a rolled-back store
/// that brings it back is put right.
struct RetiredSecret: Codable, Sendable, Equatable {
    var fingerprint: String
    var digest: String
    /// Unix seconds of the retirement.
    var at: Int64

    init(_ secret: TurnSecret, at: Int64) {
        fingerprint = secret.fingerprint
        digest = Self.digest(secret)
        self.at = at
    }

    static func digest(_ secret: TurnSecret) -> String {
        secret.withExposedBytes { Hex.encode(Digest.sha256($0)) }
    }

    /// The most recent retirements kept; older ones cannot come back from any backup still in use.
    static let kept = 64

    static func remember(_ secret: TurnSecret, at: Int64, in list: [RetiredSecret]?) -> [RetiredSecret] {
        Array(((list ?? []) + [RetiredSecret(secret, at: at)]).suffix(kept))
    }
}

extension Reconciliation {
    /// What `check` says of drift between coturn's store and turnkeeper's state; changes nothing.
    static func findings(_ configuration: Configuration) async -> [Checker.Finding] {
        guard configuration.role.managesCoturn,
            let drift = try? await makeRotation(configuration, environment: .quiet).reconcile(repair: false),
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
