public import TurnkeeperCore
import TurnkeeperCrypto

/// A time-limited TURN REST credential: what Synapse hands a client and coturn checks.
public struct TurnCredential: Sendable, Hashable {
    /// `<expiry>:<user>`.
    public let username: String
    /// base64(HMAC-SHA1(secret, username)), standard alphabet with padding: always 28 characters.
    public let password: String
    /// Unix seconds after which coturn refuses it.
    public let expiry: Int64
}

/// Mints credentials for one secret, exactly as Synapse's `/voip/turnServer` does.
///
/// Holds a keyed HMAC context, so it is not thread-safe: one minter per task or thread.
public final class CredentialMinter {
    private let hmac: KeyedHMAC
    /// The fingerprint of the secret this minter signs with.
    public let fingerprint: String

    public init(secret: TurnSecret) throws(TurnkeeperError) {
        self.hmac = try secret.withExposedBytes { (bytes) throws(TurnkeeperError) in try KeyedHMAC(.sha1, key: bytes) }
        self.fingerprint = secret.fingerprint
    }

    /// A credential for `user` that coturn accepts until `expiry` (Unix seconds).
    public func credential(user: String, expiry: Int64) -> TurnCredential {
        let username = RESTUsername.make(expiry: expiry, user: user)
        return TurnCredential(username: username, password: password(for: username), expiry: expiry)
    }

    /// A credential as Synapse would mint it at `nowMilliseconds` with `turn_user_lifetime` = `lifetime`.
    public func credential(user: String, lifetime: SynapseDuration, nowMilliseconds: Int64) -> TurnCredential {
        // Synapse: "%d" % ((now_ms + lifetime_ms) / 1000), which truncates.
        credential(user: user, expiry: (nowMilliseconds + lifetime.milliseconds) / 1000)
    }

    /// The password for any `username`.
    public func password(for username: String) -> String {
        var username = username
        return username.withUTF8 { message in
            withUnsafeTemporaryAllocation(byteCount: 20, alignment: 1) { tag in
                hmac.authenticate(UnsafeRawBufferPointer(message), into: tag)
                return String(unsafeUninitializedCapacity: 28) { output in
                    Base64.encode(UnsafeRawBufferPointer(tag), into: output)
                }
            }
        }
    }
}

/// Checks credentials against the secrets coturn accepts.
public struct CredentialVerifier {
    public enum Verdict: Sendable, Hashable {
        /// Signed with the secret of this fingerprint, and coturn accepts it until `expiry`.
        case valid(fingerprint: String, expiry: Int64)
        /// Signed with the secret of this fingerprint, but `expiry` has passed, so coturn refuses it.
        case expired(fingerprint: String, expiry: Int64)
        /// No secret given produces this password for this username.
        case noSecretMatched
    }

    private let minters: [CredentialMinter]

    public init(secrets: [TurnSecret]) throws(TurnkeeperError) {
        var minters: [CredentialMinter] = []
        for secret in secrets { minters.append(try CredentialMinter(secret: secret)) }
        self.minters = minters
    }

    /// The verdict coturn would reach at `nowSeconds`: valid iff a secret matches and expiry ≥ now.
    public func verify(username: String, password: String, nowSeconds: Int64) -> Verdict {
        let given = Array(password.utf8)
        var matched: String?
        // Every secret is tried, so timing does not tell which one matched.
        for minter in minters where ConstantTime.equals(Array(minter.password(for: username).utf8), given) {
            matched = matched ?? minter.fingerprint
        }
        guard let matched else { return .noSecretMatched }
        let expiry = RESTUsername.expiry(of: username)
        return expiry >= nowSeconds
            ? .valid(fingerprint: matched, expiry: expiry) : .expired(fingerprint: matched, expiry: expiry)
    }
}

/// The body of Synapse's `GET /_matrix/client/v3/voip/turnServer`.
public struct TurnServerResponse: Codable, Sendable, Hashable {
    public var username: String
    public var password: String
    /// Seconds: Synapse's `turn_user_lifetime // 1000`.
    public var ttl: Int64
    public var uris: [String]

    public init(username: String, password: String, ttl: Int64, uris: [String]) {
        self.username = username
        self.password = password
        self.ttl = ttl
        self.uris = uris
    }

    public init(credential: TurnCredential, lifetime: SynapseDuration, uris: [String]) {
        self.username = credential.username
        self.password = credential.password
        self.ttl = lifetime.seconds
        self.uris = uris
    }
}
