import TurnkeeperCore
package import TurnkeeperCredentials

/// The question "does coturn accept this right now?", asked the way a client asks it: with an allocation.
public protocol CoturnProbe: Sendable {
    /// Where it asks (coturn.verify_uri), for messages.
    var uri: String { get }
    /// True when coturn granted an allocation with these credentials (released at once), false when it refused
    /// them (401). Anything else (no answer, another error) is thrown: it proves nothing either way.
    func grants(username: String, password: String) async throws -> Bool
}

extension CoturnProbe {
    /// Whether coturn accepts credentials signed with `secret`, minted as Synapse mints them. They expire a day
    /// from now: coturn judges expiry by the TURN host's clock, and a clock ahead by more than a short lifetime
    /// would refuse them for their age and pass for a secret coturn refuses (a false proof of a retirement).
    /// A day of skew is not hidden by this; `check` measures the clock itself (``CoturnClock``). The credential is
    /// never handed to anyone, and its allocation is released at once.
    package func accepts(_ secret: TurnSecret, now: Int64) async throws -> Bool {
        let credential = try CredentialMinter(secret: secret).credential(
            user: "@turnkeeper-rotation:localhost", expiry: now + 86_400)
        return try await grants(username: credential.username, password: credential.password)
    }

    /// Step 3: coturn must grant an allocation with `secret`.
    package func verify(_ secret: TurnSecret, now: Int64) async throws {
        guard try await accepts(secret, now: now) else {
            throw TurnkeeperError(
                .verificationFailed, "coturn refused credentials signed with \(secret.fingerprint) (401)")
        }
    }
}
