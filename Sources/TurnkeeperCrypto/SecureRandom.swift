import CLibcrypto
public import TurnkeeperCore

/// Cryptographically secure random bytes from OpenSSL's `RAND_bytes`.
public enum SecureRandom {
    public static func bytes(_ count: Int) throws(TurnkeeperError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let ok = bytes.withUnsafeMutableBufferPointer { RAND_bytes($0.baseAddress, Int32($0.count)) }
        guard ok == 1 else {
            throw TurnkeeperError(
                .cryptoFailure,
                "libcrypto's random generator is not seeded or failed; no secret was made. \(openSSLErrors())"
            )
        }
        return bytes
    }
}
