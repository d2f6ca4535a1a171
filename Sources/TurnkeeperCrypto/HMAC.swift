import CLibcrypto
public import TurnkeeperCore

/// A hash function usable with HMAC.
public struct HMACAlgorithm: Sendable, Hashable {
    /// OpenSSL's name for the digest.
    let digestName: String
    /// Length of the tag in bytes.
    public let outputSize: Int

    public static let sha1 = HMACAlgorithm(digestName: "SHA1", outputSize: 20)
    public static let sha256 = HMACAlgorithm(digestName: "SHA256", outputSize: 32)
}

/// An HMAC context keyed once and reused for many messages.
///
/// Keying costs two compression-function calls and an OpenSSL provider lookup; reusing the
/// keyed state is what makes minting a credential cost about a microsecond. Not thread-safe:
/// give each task or thread its own.
public final class KeyedHMAC {
    public let algorithm: HMACAlgorithm
    private let context: OpaquePointer

    public init(_ algorithm: HMACAlgorithm, key: some Collection<UInt8>) throws(TurnkeeperError) {
        let keyBytes = Array(key)
        let context = keyBytes.withUnsafeBufferPointer { key in
            turnkeeper_hmac_new(algorithm.digestName, key.baseAddress, key.count)
        }
        guard let context else {
            throw TurnkeeperError(
                .cryptoFailure, "libcrypto could not create an HMAC-\(algorithm.digestName) context. \(openSSLErrors())"
            )
        }
        self.algorithm = algorithm
        self.context = context
    }

    deinit {
        EVP_MAC_CTX_free(context)
    }

    /// Writes the tag of `message` into `output`, which must hold ``HMACAlgorithm/outputSize`` bytes.
    @inlinable
    public func authenticate(_ message: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) {
        compute(message, output)
    }

    /// The tag of `message`.
    public func authenticationCode(for message: some Collection<UInt8>) -> [UInt8] {
        let bytes = Array(message)
        return [UInt8](unsafeUninitializedCapacity: algorithm.outputSize) { output, count in
            bytes.withUnsafeBytes { compute($0, UnsafeMutableRawBufferPointer(output)) }
            count = algorithm.outputSize
        }
    }

    @usableFromInline
    func compute(_ message: UnsafeRawBufferPointer, _ output: UnsafeMutableRawBufferPointer) {
        precondition(output.count >= algorithm.outputSize, "HMAC output buffer too small")
        let written = turnkeeper_hmac_compute(
            context,
            message.baseAddress?.assumingMemoryBound(to: UInt8.self),
            message.count,
            output.baseAddress!.assumingMemoryBound(to: UInt8.self),
            output.count
        )
        // Only an out-of-memory OpenSSL fails here; a wrong tag would be worse than stopping.
        precondition(written == algorithm.outputSize, "libcrypto failed to compute an HMAC")
    }
}

/// One-shot HMAC.
public enum HMAC {
    public static func authenticationCode(
        _ algorithm: HMACAlgorithm,
        key: some Collection<UInt8>,
        message: some Collection<UInt8>
    ) throws(TurnkeeperError) -> [UInt8] {
        try KeyedHMAC(algorithm, key: key).authenticationCode(for: message)
    }
}

/// Drains OpenSSL's thread-local error queue into a sentence.
func openSSLErrors() -> String {
    var messages: [String] = []
    while true {
        let code = ERR_get_error()
        if code == 0 { break }
        var buffer = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &buffer, buffer.count)
        messages.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }
    return messages.isEmpty ? "" : "OpenSSL says: " + messages.joined(separator: "; ")
}
