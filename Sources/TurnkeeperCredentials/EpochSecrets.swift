public import TurnkeeperCore
import TurnkeeperCrypto

/// Secrets derived per rotation epoch from a root key both hosts hold, so that a Synapse host and a separate
/// TURN host agree on every epoch's secret without talking to each other (docs/separate-turn-host.md):
///
///     secret(e) = 48 characters of [A-Za-z0-9] drawn from HKDF-SHA256(root key, salt, "<realm>\0<e>")
///
/// Epoch e covers Unix seconds [e × length, (e + 1) × length). Whoever holds the root key can compute every
/// past and future secret; docs/security.md weighs that against random secrets.
public struct EpochSecrets: Sendable {
    public let realm: String
    public let length: Int64
    private let rootKey: TurnSecret

    static let salt = Array("turnkeeper epoch secret v1".utf8)
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".utf8)

    public init(rootKey: TurnSecret, realm: String, length: Int64) {
        self.rootKey = rootKey
        self.realm = realm
        self.length = max(1, length)
    }

    /// Names the root key in state and logs without showing it.
    public var keyFingerprint: String { rootKey.fingerprint }

    public func epoch(at unixSeconds: Int64) -> Int64 {
        unixSeconds >= 0 ? unixSeconds / length : (unixSeconds - length + 1) / length
    }

    public func start(of epoch: Int64) -> Int64 { epoch * length }

    public func secret(for epoch: Int64) throws(TurnkeeperError) -> TurnSecret {
        let info = Array(realm.utf8) + [0] + Array(String(epoch).utf8)
        // Bytes of 248 and above are skipped so each character is uniform over 62 (248 = 4 × 62); 96 bytes
        // leave 48 characters with overwhelming probability, and more are drawn in the rare case they do not.
        var length = 96
        while true {
            let bytes = try rootKey.withExposedBytes { key throws(TurnkeeperError) in
                try HKDF.sha256(key: key, salt: Self.salt, info: info, length: length)
            }
            let characters = bytes.filter { $0 < 248 }.prefix(48).map { Self.alphabet[Int($0) % 62] }
            if characters.count == 48 {
                return try TurnSecret(adopting: String(decoding: characters, as: UTF8.self), source: "epoch \(epoch)")
            }
            length *= 2
        }
    }
}
