import CLibcrypto

/// Comparisons whose duration does not depend on where the inputs differ.
public enum ConstantTime {
    /// True when `a` and `b` are equal. Only the lengths, which are not secret, may end it early.
    public static func equals(_ a: some Collection<UInt8>, _ b: some Collection<UInt8>) -> Bool {
        let a = Array(a)
        let b = Array(b)
        guard a.count == b.count else { return false }
        if a.isEmpty { return true }
        return a.withUnsafeBytes { a in
            b.withUnsafeBytes { b in CRYPTO_memcmp(a.baseAddress, b.baseAddress, a.count) == 0 }
        }
    }
}
