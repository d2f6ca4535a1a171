public import TurnkeeperCore
import TurnkeeperCrypto

/// The secret that Synapse (`turn_shared_secret`) and coturn (`static-auth-secret`) share.
///
/// Its value never appears in `description`, `debugDescription`, `dump()` or string interpolation:
/// those show a ``fingerprint`` only. Code that must write the value says so with ``withExposedBytes(_:)``.
public struct TurnSecret: Sendable {
    /// Characters a secret may hold: safe unquoted in coturn's config, YAML, SQL and Redis.
    public static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".utf8)
    /// 48 characters of a 62-letter alphabet carry about 285 bits.
    public static let generatedLength = 48
    /// Below this many characters a secret carries less than 256 bits.
    public static let minimumStrongLength = 43

    private let bytes: [UInt8]

    /// The first 8 hex digits of the SHA-256 of the value: enough to tell secrets apart, useless to an attacker.
    public let fingerprint: String

    init(trustedBytes bytes: [UInt8]) {
        self.bytes = bytes
        self.fingerprint = String(Hex.encode(Digest.sha256(bytes)).prefix(8))
    }

    /// A secret from `text`, which must be non-empty and drawn from ``alphabet``.
    /// `source` names where it came from in the error (never the value itself).
    public init(validating text: String, source: String = "the secret") throws(TurnkeeperError) {
        let bytes = Array(text.utf8)
        if let problem = Self.problem(in: bytes, source: source) {
            throw problem
        }
        self.init(trustedBytes: bytes)
    }

    /// A secret someone else chose, such as the `turn_shared_secret` already in Synapse's config: any
    /// non-empty text is taken as it is, since the point is to sign exactly what Synapse signs.
    public init(adopting text: String, source: String) throws(TurnkeeperError) {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty else {
            throw TurnkeeperError(
                .invalidSecret,
                "\(source) is empty, so Synapse hands out no TURN credentials (its /voip/turnServer answers {}). "
                    + "Set a secret: `turnkeeper secret generate`."
            )
        }
        // A line break or control character cannot be a TURN secret coturn holds (its config is line-based), and
        // written into turnserver.conf it would add directives of its own: refused, never quoted.
        let scalars = text.unicodeScalars
        guard
            !scalars.contains(where: {
                $0.value < 0x20 || (0x7F...0x9F).contains($0.value) || $0.value == 0x2028 || $0.value == 0x2029
            })
        else {
            throw TurnkeeperError(
                .invalidSecret,
                "\(source) holds a line break or control character, which coturn cannot hold; nothing was changed. "
                    + "Give Synapse a new secret from `turnkeeper secret generate`, then run turnkeeper again."
            )
        }
        // coturn's turn_secret.value is varchar(256), and its config lines are read 1023 bytes at a time.
        guard bytes.count <= 256 else {
            throw TurnkeeperError(
                .invalidSecret,
                "\(source) is \(bytes.count) bytes long, more than the 256 coturn's user database holds; nothing was "
                    + "changed. Give Synapse a secret from `turnkeeper secret generate`, then run turnkeeper again.")
        }
        self.init(trustedBytes: bytes)
    }

    /// True when every character is in ``alphabet``.
    public var isInAlphabet: Bool { bytes.allSatisfy { Self.alphabet.contains($0) } }

    /// A fresh secret of `length` characters drawn uniformly from ``alphabet`` with `RAND_bytes`.
    public static func generate(length: Int = generatedLength) throws(TurnkeeperError) -> TurnSecret {
        precondition(length > 0)
        var value: [UInt8] = []
        value.reserveCapacity(length)
        // Rejection sampling: 248 = 4 × 62, so bytes below it map onto the alphabet without bias.
        while value.count < length {
            for byte in try SecureRandom.bytes(length) where byte < 248 {
                value.append(alphabet[Int(byte) % alphabet.count])
                if value.count == length { break }
            }
        }
        return TurnSecret(trustedBytes: value)
    }

    /// Number of characters; not secret.
    public var length: Int { bytes.count }

    /// Approximate strength: log2(62) ≈ 5.954 bits a character.
    public var estimatedBits: Int { Int(Double(bytes.count) * 5.954) }

    /// Gives `body` the value. Use only to write it where it belongs: a managed file, a key, a database row.
    public func withExposedBytes<R, E: Error>(_ body: ([UInt8]) throws(E) -> R) throws(E) -> R {
        try body(bytes)
    }

    /// Describes the first problem in `bytes`, naming line and column but never the value.
    static func problem(in bytes: [UInt8], source: String) -> TurnkeeperError? {
        if bytes.isEmpty || bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }) {
            return TurnkeeperError(
                .invalidSecret,
                "\(source) is empty or holds only whitespace. Synapse would silently hand out no TURN credentials. "
                    + "Make one with `turnkeeper secret generate --out FILE`."
            )
        }
        var column = 1
        for byte in bytes {
            if byte == 0x0A {
                return TurnkeeperError(
                    .invalidSecret,
                    "\(source), line 2: the secret goes on past the end of line 1. A secret is one line of A-Z, a-z and 0-9."
                )
            }
            if !alphabet.contains(byte) {
                return TurnkeeperError(
                    .invalidSecret,
                    "\(source), line 1, column \(column): \(describe(byte)) is not allowed in a secret. "
                        + "Secrets use only A-Z, a-z and 0-9, which coturn's config, YAML, SQL and Redis all take "
                        + "unquoted. Make one with `turnkeeper secret generate --out FILE`."
                )
            }
            column += 1
        }
        return nil
    }

    /// Names a character class without echoing secret material.
    private static func describe(_ byte: UInt8) -> String {
        switch byte {
        case 0x20: "a space"
        case 0x09: "a tab"
        case 0x0A: "a line break"
        case 0x0D: "a carriage return"
        case UInt8(ascii: "\""): "a double quote"
        case UInt8(ascii: "'"): "a single quote"
        case UInt8(ascii: "\\"): "a backslash"
        case 0x00..<0x20, 0x7F: "a control character"
        case 0x80...: "a non-ASCII character"
        default: "punctuation"
        }
    }
}

extension TurnSecret: Equatable {
    /// Constant-time: how much of two secrets agree must not leak through timing.
    public static func == (lhs: TurnSecret, rhs: TurnSecret) -> Bool {
        ConstantTime.equals(lhs.bytes, rhs.bytes)
    }
}

extension TurnSecret: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var description: String { "TurnSecret(fingerprint: \(fingerprint))" }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: ["fingerprint": fingerprint], displayStyle: .struct) }
}

/// In turnkeeper's own state files: the secret as its text. Decoding checks it as an adopted secret, and a
/// failure says nothing of the value.
extension TurnSecret: Codable {
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        self = try TurnSecret(adopting: text, source: "a secret in a turnkeeper state file")
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try withExposedBytes { try container.encode(String(decoding: $0, as: UTF8.self)) }
    }
}
