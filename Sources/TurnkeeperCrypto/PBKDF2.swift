import CLibcrypto
public import TurnkeeperCore

/// PBKDF2-HMAC-SHA-256 (RFC 8018): the salted password of SCRAM-SHA-256 (RFC 7677), PostgreSQL's login.
public enum PBKDF2 {
    public static func sha256(
        password: some Collection<UInt8>, salt: some Collection<UInt8>, iterations: Int, length: Int = 32
    ) throws(TurnkeeperError) -> [UInt8] {
        let password = Array(password)
        let salt = Array(salt)
        var output = [UInt8](repeating: 0, count: length)
        let status = password.withUnsafeBufferPointer { password in
            salt.withUnsafeBufferPointer { salt in
                PKCS5_PBKDF2_HMAC(
                    password.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) },
                    Int32(password.count), salt.baseAddress, Int32(salt.count), Int32(iterations), EVP_sha256(),
                    Int32(length), &output)
            }
        }
        guard status == 1 else {
            throw TurnkeeperError(.cryptoFailure, "libcrypto refused PBKDF2-HMAC-SHA256. \(openSSLErrors())")
        }
        return output
    }
}
