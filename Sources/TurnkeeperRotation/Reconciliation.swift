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
    /// Fingerprints of retired secrets back a second time after turnkeeper removed them once: put back on
    /// purpose, most likely, so left in place and only reported (an app not listed may sign with one).
    public var leftInPlace: [String] = []
    /// Fingerprints of retired secrets the store held again that a consumer signs with now (a restored backup of
    /// its files, a re-applied snippet): never removed, and each with why.
    public var keptInUse: [String] = []
    /// True when the store was changed; false for a report only (`check`).
    public var repaired: Bool
    /// Digests of the retired secrets removed now, to be marked so that a second return is left in place.
    var removedDigests: [String] = []

    public var isEmpty: Bool { restored.isEmpty && removed.isEmpty && leftInPlace.isEmpty && keptInUse.isEmpty }

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
        if !leftInPlace.isEmpty {
            parts.append(
                "coturn's store holds \(leftInPlace.joined(separator: ", ")) again, which turnkeeper retired and already "
                    + "removed once after a rollback; left in place, as it was put back again (list the app that "
                    + "signs with it under consumers:, or remove it by hand)")
        }
        if !keptInUse.isEmpty {
            parts.append(
                "coturn's store holds again what turnkeeper retired, and it is in use, so it stays: "
                    + keptInUse.joined(separator: "; "))
        }
        return parts.joined(separator: "; ")
    }

    /// Compares and, with `repair`, brings `store` in line: adds each of `needed` it lacks, removes each of
    /// `retired` it holds (once: one back after that is left in place and reported). `keeps` says why a consumer
    /// still signs with a secret, read from the world now: such a secret is never removed.
    static func run(
        store: any CoturnSecretStore, needed: [TurnSecret], retired: [RetiredSecret], repair: Bool,
        keeps: (TurnSecret) async -> String? = { _ in nil }
    ) async throws -> Reconciliation {
        let held = try await store.secrets()
        var result = Reconciliation(repaired: repair)
        for secret in needed where !held.contains(secret) {
            if repair { try await store.add(secret) }
            result.restored.append(secret.fingerprint)
        }
        let byDigest = Dictionary(retired.map { ($0.digest, $0) }, uniquingKeysWith: { first, _ in first })
        for secret in held where !needed.contains(secret) {
            let digest = RetiredSecret.digest(secret)
            guard let entry = byDigest[digest] else { continue }
            if entry.removedAfterReturn == true {
                result.leftInPlace.append(secret.fingerprint)
                continue
            }
            if let reason = await keeps(secret) {
                result.keptInUse.append("\(secret.fingerprint): \(reason)")
                continue
            }
            if repair { try await store.remove(secret) }
            result.removed.append(secret.fingerprint)
            result.removedDigests.append(digest)
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
    /// It came back once (a rollback) and was removed again; a second return is left in place.
    var removedAfterReturn: Bool?

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

    /// `list` with the entries of `digests` marked as removed after a return.
    static func markRemoved(_ digests: [String], in list: [RetiredSecret]?) -> [RetiredSecret]? {
        guard var list, !digests.isEmpty else { return list }
        for index in list.indices where digests.contains(list[index].digest) { list[index].removedAfterReturn = true }
        return list
    }
}
