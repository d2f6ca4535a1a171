import CLibcrypto

/// Message digests through libcrypto's EVP interface.
public enum Digest {
    public static func sha256(_ data: some Collection<UInt8>) -> [UInt8] { digest(data, EVP_sha256(), 32) }
    public static func sha1(_ data: some Collection<UInt8>) -> [UInt8] { digest(data, EVP_sha1(), 20) }

    fileprivate static func digest(_ data: some Collection<UInt8>, _ md: OpaquePointer?, _ size: Int) -> [UInt8] {
        let bytes = Array(data)
        return [UInt8](unsafeUninitializedCapacity: size) { output, count in
            var length: UInt32 = 0
            let ok = bytes.withUnsafeBytes { input in
                EVP_Digest(input.baseAddress, input.count, output.baseAddress, &length, md, nil)
            }
            precondition(ok == 1 && Int(length) == size, "libcrypto failed to compute a digest")
            count = size
        }
    }
}

extension Digest {
    /// MD5, which STUN's long-term credential key (RFC 8489 §9.2.2) still requires. Not for anything else.
    public static func md5(_ data: some Collection<UInt8>) -> [UInt8] { digest(data, EVP_md5(), 16) }
}
