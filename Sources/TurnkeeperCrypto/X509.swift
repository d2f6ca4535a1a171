import CLibcrypto
import Glibc

/// An X.509 certificate read with libcrypto, the library coturn serves it with: the one certificate reader, for
/// the certificate `provision` hands coturn and the one a TURN server presents to `probe` and `audit` (whose TLS
/// handshake gives its DER bytes). Only what turnkeeper judges is exposed; nothing of it is ever printed as it is.
public final class X509Certificate {
    private let pointer: OpaquePointer

    private init(_ pointer: OpaquePointer) { self.pointer = pointer }

    deinit { X509_free(pointer) }

    /// One certificate in DER, as a TLS handshake carries it.
    public convenience init(der: [UInt8]) throws(X509Error) {
        let decoded: OpaquePointer? = der.withUnsafeBufferPointer { buffer in
            var cursor = buffer.baseAddress
            return d2i_X509(nil, &cursor, buffer.count)
        }
        ERR_clear_error()
        guard let decoded else { throw X509Error(.undecodable) }
        self.init(decoded)
    }

    /// Every CERTIFICATE block of a PEM file, in order (a server's own first, then its chain).
    public static func pemChain(_ pem: [UInt8]) throws(X509Error) -> [X509Certificate] {
        guard pem.contains(text: "-----BEGIN CERTIFICATE-----") else {
            throw X509Error(pem.contains(text: "PRIVATE KEY-----") ? .keyNotCertificate : .noCertificateBlock)
        }
        var chain: [X509Certificate] = []
        let ended: Bool = pem.withUnsafeBytes { raw in
            guard let bio = BIO_new_mem_buf(raw.baseAddress, Int32(clamping: raw.count)) else { return false }
            defer { BIO_free(bio) }
            // A literal closure without captures: OpenSSL's default callback would prompt on the terminal.
            while let certificate = PEM_read_bio_X509(bio, nil, { _, _, _, _ in -1 }, nil) {
                chain.append(X509Certificate(certificate))
            }
            // The loop ends at the end of the file (no more start lines) or at a block that does not decode.
            let error = ERR_peek_last_error()
            ERR_clear_error()
            return ERR_GET_LIB(error) == ERR_LIB_PEM && ERR_GET_REASON(error) == PEM_R_NO_START_LINE
        }
        guard ended, !chain.isEmpty else { throw X509Error(.undecodableBlock(chain.count + 1)) }
        return chain
    }

    /// Unix seconds; nil when libcrypto cannot read the time.
    public var notValidBefore: Int64? { Self.seconds(X509_get0_notBefore(pointer)) }
    public var notValidAfter: Int64? { Self.seconds(X509_get0_notAfter(pointer)) }

    /// The DNS and IP entries of subjectAltName, in order (other kinds are left out).
    public var subjectAlternativeNames: [SubjectAlternativeName] {
        guard let names = turnkeeper_sans(pointer) else { return [] }
        defer { turnkeeper_sans_free(names) }
        var result: [SubjectAlternativeName] = []
        for index in 0..<max(0, turnkeeper_sans_count(names)) {
            var data: UnsafePointer<UInt8>?
            var length: Int32 = 0
            let type = turnkeeper_san_at(names, index, &data, &length)
            guard let data, length >= 0 else { continue }
            let bytes = Array(UnsafeBufferPointer(start: data, count: Int(length)))
            switch type {
            case GEN_DNS: result.append(.dns(String(decoding: bytes, as: UTF8.self)))
            case GEN_IPADD: result.append(.ip(bytes))
            default: break
            }
        }
        return result
    }

    /// Whether a DNS name in subjectAltName covers `host`, as browsers' WebRTC stacks judge it: no fallback to the
    /// subject's CN, no partial wildcards (`t*.example.com`).
    public func covers(host: String) -> Bool {
        let matched = host.withCString { name in
            X509_check_host(
                pointer, name, strlen(name),
                UInt32(X509_CHECK_FLAG_NEVER_CHECK_SUBJECT | X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS), nil)
        }
        ERR_clear_error()
        return matched == 1
    }

    /// Whether its key usage and extended key usage allow a TLS server to present it.
    public var servesTLS: Bool {
        let allowed = X509_check_purpose(pointer, X509_PURPOSE_SSL_SERVER, 0) == 1
        ERR_clear_error()
        return allowed
    }

    /// Whether `key` is the private key of this certificate's public key.
    public func isCertified(_ key: PEMPrivateKey) -> Bool {
        let matches = X509_check_private_key(pointer, key.pointer) == 1
        ERR_clear_error()
        return matches
    }

    private static func seconds(_ time: UnsafePointer<ASN1_TIME>?) -> Int64? {
        guard let time else { return nil }
        var parts = tm()
        guard ASN1_TIME_to_tm(time, &parts) == 1 else { return nil }
        return Int64(timegm(&parts))
    }
}

/// A subjectAltName entry turnkeeper reads.
public enum SubjectAlternativeName: Sendable, Equatable {
    case dns(String)
    /// 4 bytes for IPv4, 16 for IPv6; a hostile certificate may carry another length.
    case ip([UInt8])
}

/// A private key from a PEM file. An encrypted one is refused: coturn cannot ask for its passphrase.
public final class PEMPrivateKey {
    fileprivate let pointer: OpaquePointer

    public init(pem: [UInt8]) throws(X509Error) {
        let key: OpaquePointer? = pem.withUnsafeBytes { raw in
            guard let bio = BIO_new_mem_buf(raw.baseAddress, Int32(clamping: raw.count)) else { return nil }
            defer { BIO_free(bio) }
            return PEM_read_bio_PrivateKey(bio, nil, { _, _, _, _ in -1 }, nil)
        }
        ERR_clear_error()
        if let key {
            pointer = key
            return
        }
        if pem.contains(text: "ENCRYPTED") { throw X509Error(.encryptedKey) }
        if pem.contains(text: "-----BEGIN CERTIFICATE-----") && !pem.contains(text: "PRIVATE KEY-----") {
            throw X509Error(.certificateNotKey)
        }
        throw X509Error(pem.contains(text: "PRIVATE KEY-----") ? .undecodable : .noKeyBlock)
    }

    deinit { EVP_PKEY_free(pointer) }
}

/// Why bytes are not the certificate or key asked for. Equal by kind; never carries the bytes.
public struct X509Error: Error, Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// A PEM file without a BEGIN CERTIFICATE line.
        case noCertificateBlock
        /// A certificate was asked for and the file holds a private key.
        case keyNotCertificate
        /// The Nth certificate block of a PEM file (1-based) does not decode.
        case undecodableBlock(Int)
        /// DER, or a key block, that does not decode.
        case undecodable
        case encryptedKey
        /// A key was asked for and the file holds only a certificate.
        case certificateNotKey
        /// Neither a key block nor anything else turnkeeper recognises.
        case noKeyBlock
    }

    public let kind: Kind

    public init(_ kind: Kind) { self.kind = kind }
}

extension X509Error: CustomStringConvertible {
    public var description: String {
        switch kind {
        case .noCertificateBlock: "no PEM certificate block"
        case .keyNotCertificate: "a private key where a certificate was expected"
        case .undecodableBlock(let block): "certificate block \(block) does not decode"
        case .undecodable: "the certificate or key does not decode"
        case .encryptedKey: "an encrypted private key"
        case .certificateNotKey: "a certificate where a private key was expected"
        case .noKeyBlock: "no PEM private key block"
        }
    }
}

extension [UInt8] {
    /// Whether `text`'s UTF-8 bytes occur in these bytes.
    fileprivate func contains(text: String) -> Bool {
        let needle = Array(text.utf8)
        guard needle.count <= count else { return false }
        return (0...(count - needle.count)).contains { start in
            self[start..<(start + needle.count)].elementsEqual(needle)
        }
    }
}
