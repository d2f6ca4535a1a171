import TurnkeeperCrypto

/// The key for MESSAGE-INTEGRITY (HMAC-SHA1) or MESSAGE-INTEGRITY-SHA256.
public struct STUNIntegrityKey: Sendable, Hashable {
    public enum Algorithm: Sendable, Hashable {
        case sha1
        case sha256
    }

    public let algorithm: Algorithm
    let key: [UInt8]

    /// Long-term credentials (RFC 8489 §9.2.2): MD5(username ":" realm ":" password) for HMAC-SHA1,
    /// SHA-256 of the same string for HMAC-SHA256. TURN REST credentials are long-term credentials.
    public static func longTerm(username: String, realm: String, password: String, algorithm: Algorithm = .sha1) -> Self
    {
        let material = Array("\(username):\(realm):\(password)".utf8)
        return Self(algorithm: algorithm, key: algorithm == .sha1 ? Digest.md5(material) : Digest.sha256(material))
    }

    /// Short-term credentials (RFC 8489 §9.1.1): the password itself.
    public static func shortTerm(password: String, algorithm: Algorithm = .sha1) -> Self {
        Self(algorithm: algorithm, key: Array(password.utf8))
    }

    var attributeType: STUNAttributeType { algorithm == .sha1 ? .messageIntegrity : .messageIntegritySHA256 }
    var hmacAlgorithm: HMACAlgorithm { algorithm == .sha1 ? .sha1 : .sha256 }

    func authenticate(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
        // Keys are at most 32 bytes, so keying cannot fail short of OpenSSL itself being broken.
        guard let keyed = try? KeyedHMAC(hmacAlgorithm, key: key) else {
            preconditionFailure("libcrypto could not key an HMAC")
        }
        return keyed.authenticationCode(for: bytes)
    }
}
