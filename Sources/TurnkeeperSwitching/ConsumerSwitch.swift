package import TurnkeeperConfiguration
import TurnkeeperCore
package import TurnkeeperCredentials
import TurnkeeperCrypto
package import TurnkeeperStores
package import TurnkeeperSynapse

/// One app that signs TURN credentials with the shared secret, as step 4 switches it: Synapse, a Prosody, or
/// any other app through a file. Each is switched, and its progress saved, on its own; the old secret is
/// retired only once all of them have switched and the longest of their credential lifetimes has passed.
package protocol ConsumerSwitch: Sendable {
    /// Unique on this host; progress is saved under it ("synapse", or the name in turnkeeper.yaml).
    var name: String { get }
    /// For messages: "Synapse", "prosody consumer xmpp".
    var label: String { get }
    /// Refuses what cannot be written safely (links, other users' files, foreign files); with
    /// `removingStale`, clears temporary copies a killed run left.
    func checkWritable(removingStale: Bool) async throws
    /// Everything that decides whether this consumer will end up signing with `secret`, checked without
    /// changing anything. `known`: the secrets coturn or turnkeeper holds now, which a file it does not
    /// mark as its own may hold. Returns what it read, for the switch that follows: nothing is read twice.
    func preflight(for secret: TurnSecret, known: [TurnSecret]) async throws -> SwitchPlan
    /// Writes what `plan` holds, reloads or restarts, and checks. `previous`: the restart last recorded for this
    /// switch, handed to `record` anew before each restart command runs and once it succeeded. Returns what it
    /// can truly say.
    func switchTo(
        _ plan: SwitchPlan, previous: RestartRecord?, probe: any CoturnProbe,
        record: (RestartRecord) async throws -> Void
    ) async throws -> String
    /// Which of `candidates` it signs with now, as far as can be told without changing anything.
    func inUse(candidates: [TurnSecret], now: Int64) async -> ConsumerUse
    /// Why this consumer still needs `secret` in coturn, read from the world now (its files, its answers), not
    /// from turnkeeper's state; nil when it provably does not. `candidates`: every secret it might sign with.
    func keeps(_ secret: TurnSecret, candidates: [TurnSecret], now: Int64) async -> ConsumerKeep?
    /// The longest its credentials stay valid as its files are now, in seconds; nil when that cannot be read.
    func lifetimeNow() async -> Int64?
}

/// What a consumer's preflight read and decided, for its own switch to `secret` right after.
package struct SwitchPlan: Sendable {
    package let secret: TurnSecret
    /// How long the credentials it hands out stay valid, in seconds.
    package let lifetime: Int64
    package let prepared: Prepared

    package enum Prepared: Sendable {
        /// Synapse: its configuration as it will read it with turnkeeper's file written.
        case synapse(SynapseConfig)
        /// The file's new content, rendered from the template as it was read.
        case bytes([UInt8])
    }
}

/// Why a consumer still needs a secret in coturn.
package struct ConsumerKeep: Sendable {
    package var reason: String
    /// Only the running app uses it (what it hands out), not its files: restarting it ends that.
    package var runningOnly = false
}

/// What a consumer signs with, and how that is known.
package enum ConsumerUse: Sendable {
    /// One of the candidates; `source` says how it was told ("what Prosody hands out now", "its file").
    case signsWith(TurnSecret, source: String)
    /// Known to sign with none of them (no secret set, no file yet, another secret): why, for `check`.
    case none(String)
    /// It could not be told (a file or an answer that cannot be read): why, for `check`.
    case unknown(String)

    /// Why a consumer in this state still needs `secret` in coturn, or nil when it does not.
    package func keeps(_ secret: TurnSecret, label: String) -> String? {
        switch self {
        case .signsWith(let used, let source):
            used == secret ? "\(label) signs with it (\(source))" : nil
        case .none: nil
        case .unknown(let reason): "whether \(label) signs with it cannot be told (\(reason))"
        }
    }
}

extension ConsumerSwitch {
    package func keeps(_ secret: TurnSecret, candidates: [TurnSecret], now: Int64) async -> ConsumerKeep? {
        await inUse(candidates: candidates, now: now).keeps(secret, label: label).map { ConsumerKeep(reason: $0) }
    }
}

package enum ConsumerSwitches {
    /// The consumers besides Synapse.
    package static func others(_ configuration: Configuration, environment: SwitchEnvironment) -> [any ConsumerSwitch] {
        configuration.consumers.map { consumer -> any ConsumerSwitch in
            switch consumer.kind {
            case .prosody(let prosody):
                ProsodySwitch(name: consumer.name, label: consumer.label, prosody: prosody, environment: environment)
            case .file(let file):
                FileSwitch(name: consumer.name, label: consumer.label, file: file, environment: environment)
            }
        }
    }

    /// The digest a restart is recorded under: a restart is not repeated for the same content.
    package static func digest(_ bytes: [UInt8]) -> String { String(Hex.encode(Digest.sha256(bytes)).prefix(16)) }
}

extension CredentialVerifier {
    /// Which of `secrets` signed this credential, whether or not it has expired.
    package static func signer(of username: String, _ password: String, among secrets: [TurnSecret], now: Int64)
        -> TurnSecret?
    {
        secrets.first { secret in
            guard let verifier = try? CredentialVerifier(secrets: [secret]) else { return false }
            switch verifier.verify(username: username, password: password, nowSeconds: now) {
            case .valid, .expired: return true
            default: return false
            }
        }
    }
}
