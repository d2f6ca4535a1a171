import CLibcrypto
public import TurnkeeperCore

/// HKDF-SHA256 (RFC 5869) through libcrypto's EVP_KDF.
public enum HKDF {
    public static func sha256(
        key: some Collection<UInt8>, salt: some Collection<UInt8>, info: some Collection<UInt8>, length: Int
    ) throws(TurnkeeperError) -> [UInt8] {
        guard (1...255 * 32).contains(length) else {
            throw TurnkeeperError(.cryptoFailure, "HKDF-SHA256 yields 1 to 8160 bytes, not \(length)")
        }
        let (key, salt, info) = (Array(key), Array(salt), Array(info))
        var out = [UInt8](repeating: 0, count: length)
        let ok = out.withUnsafeMutableBufferPointer { out in
            turnkeeper_hkdf_sha256(key, key.count, salt, salt.count, info, info.count, out.baseAddress, length)
        }
        guard ok == 1 else {
            throw TurnkeeperError(.cryptoFailure, "libcrypto's HKDF-SHA256 failed. \(openSSLErrors())")
        }
        return out
    }
}
