import CLibcrypto
import Glibc
public import TurnkeeperCore

/// The certificate and key coturn will serve on 5349, checked with libcrypto before a bundle names them: PEM
/// that decodes, a key that belongs to the certificate, a DNS name in subjectAltName that covers the TURN
/// host's name, and a validity period around now. Errors name the file and what is wrong, never its content.
public enum CertificateCheck {
    /// Warned about, not refused: a certificate this close to its end still works, but not for long.
    public static let expiryWarningSeconds: Int64 = 14 * 86_400

    /// Throws on anything coturn or a client would refuse; returns warnings to print.
    public static func verify(
        certificate certificatePath: String, key keyPath: String, domain: String, now: Int64
    ) throws(TurnkeeperError) -> [String] {
        func fail(_ reason: String) -> TurnkeeperError { TurnkeeperError(.invalidArgument, reason) }
        let certificateFile = try FileContents.read(certificatePath, limit: 1 << 20)
        let chain = try certificates(in: certificateFile.bytes, path: certificatePath)
        defer { chain.forEach { X509_free($0) } }
        let leaf = chain[0]

        var keyBytes = try FileContents.read(keyPath, limit: 1 << 20).bytes
        defer { keyBytes.withUnsafeMutableBytes { raw in raw.indices.forEach { raw[$0] = 0 } } }
        let key = try privateKey(in: keyBytes, path: keyPath)
        defer { EVP_PKEY_free(key) }

        guard X509_check_private_key(leaf, key) == 1 else {
            ERR_clear_error()
            throw fail(
                "--key \(keyPath) does not belong to --cert \(certificatePath): the certificate's public key is "
                    + "not this key's, so coturn would fail every TLS handshake. Give the key the certificate was "
                    + "issued for (with certbot, privkey.pem beside fullchain.pem).")
        }

        let matched = domain.withCString { name in
            // No CN fallback, and no partial wildcards (t*.example.com), which browsers' WebRTC stacks refuse.
            X509_check_host(
                leaf, name, strlen(name),
                UInt32(X509_CHECK_FLAG_NEVER_CHECK_SUBJECT | X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS), nil)
        }
        guard matched == 1 else {
            ERR_clear_error()
            throw fail(
                "--cert \(certificatePath) is not for \(domain): none of the DNS names in its subjectAltName covers "
                    + "it, so clients reaching turns:\(domain):5349 would refuse it. List its names with `openssl x509 "
                    + "-noout -ext subjectAltName -in \(certificatePath)`, and obtain a certificate for \(domain).")
        }

        // A certificate whose key usage forbids serving TLS (a client-only certificate) fails every handshake.
        guard X509_check_purpose(leaf, X509_PURPOSE_SSL_SERVER, 0) == 1 else {
            ERR_clear_error()
            throw fail(
                "--cert \(certificatePath) may not be used by a TLS server (its key usage or extended key usage "
                    + "excludes serverAuth), so clients would refuse it. Obtain a server certificate for \(domain).")
        }

        guard let notBefore = seconds(X509_get0_notBefore(leaf)), let notAfter = seconds(X509_get0_notAfter(leaf))
        else {
            throw fail(
                "--cert \(certificatePath) has a validity period libcrypto cannot read. Obtain a new certificate.")
        }
        if now < notBefore {
            throw fail(
                "--cert \(certificatePath) is not valid before \(WallClock.utcString(seconds: notBefore)); clients "
                    + "would refuse it until then. Check this machine's clock, or use a certificate valid now.")
        }
        if now >= notAfter {
            throw fail(
                "--cert \(certificatePath) expired on \(WallClock.utcString(seconds: notAfter)); clients would refuse "
                    + "it. Renew it (`certbot renew`), then run provision again.")
        }
        if notAfter - now < expiryWarningSeconds {
            return [
                "--cert \(certificatePath) expires on \(WallClock.utcString(seconds: notAfter)), in "
                    + "\(WallClock.spanString(seconds: notAfter - now)). Make sure it is renewed before then "
                    + "(coturn-certificates.path reloads coturn when it is)."
            ]
        }
        return []
    }

    /// Every CERTIFICATE block of a PEM file, the server's own first.
    private static func certificates(in bytes: [UInt8], path: String) throws(TurnkeeperError) -> [OpaquePointer] {
        func fail(_ reason: String) -> TurnkeeperError { TurnkeeperError(.invalidArgument, reason) }
        guard contains(bytes, "-----BEGIN CERTIFICATE-----") else {
            let hint =
                contains(bytes, "PRIVATE KEY-----")
                ? "it holds a private key: are --cert and --key swapped?"
                : "coturn reads PEM only. A DER file converts with `openssl x509 -inform der -in FILE -out FILE.pem`."
            throw fail("--cert \(path) is not a PEM certificate: it has no BEGIN CERTIFICATE block; \(hint)")
        }
        var chain: [OpaquePointer] = []
        let parsed: Bool = bytes.withUnsafeBytes { raw in
            guard let bio = BIO_new_mem_buf(raw.baseAddress, Int32(raw.count)) else { return false }
            defer { BIO_free(bio) }
            // A literal closure without captures: OpenSSL's default callback would prompt on the terminal.
            while let certificate = PEM_read_bio_X509(bio, nil, { _, _, _, _ in -1 }, nil) {
                chain.append(certificate)
            }
            // The loop ends at the end of the file (no more start lines) or at a block that does not decode.
            let error = ERR_peek_last_error()
            ERR_clear_error()
            return ERR_GET_LIB(error) == ERR_LIB_PEM && ERR_GET_REASON(error) == PEM_R_NO_START_LINE
        }
        guard parsed, !chain.isEmpty else {
            chain.forEach { X509_free($0) }
            throw fail(
                "--cert \(path) is not a PEM certificate: certificate block \(chain.count + 1) does not decode. "
                    + "Check that the file is whole (with certbot, name fullchain.pem).")
        }
        return chain
    }

    /// The private key of a PEM file. An encrypted key is refused: coturn cannot ask for its passphrase.
    private static func privateKey(in bytes: [UInt8], path: String) throws(TurnkeeperError) -> OpaquePointer {
        let key: OpaquePointer? = bytes.withUnsafeBytes { raw in
            guard let bio = BIO_new_mem_buf(raw.baseAddress, Int32(raw.count)) else { return nil }
            defer { BIO_free(bio) }
            return PEM_read_bio_PrivateKey(bio, nil, { _, _, _, _ in -1 }, nil)
        }
        ERR_clear_error()
        if let key { return key }
        let reason =
            if contains(bytes, "ENCRYPTED") {
                "it is encrypted, and coturn cannot ask for a passphrase. Remove it with `openssl pkey -in FILE -out "
                    + "FILE.plain`, readable by root and the turnserver group only."
            } else if contains(bytes, "-----BEGIN CERTIFICATE-----") && !contains(bytes, "PRIVATE KEY-----") {
                "it holds a certificate, not a key: are --cert and --key swapped?"
            } else if contains(bytes, "PRIVATE KEY-----") {
                "its key block does not decode. Check that the file is whole."
            } else {
                "it has no BEGIN PRIVATE KEY block; coturn reads PEM only."
            }
        throw TurnkeeperError(.invalidArgument, "--key \(path) is not a PEM private key: \(reason)")
    }

    private static func contains(_ bytes: [UInt8], _ text: String) -> Bool {
        let needle = Array(text.utf8)
        guard needle.count <= bytes.count else { return false }
        return (0...(bytes.count - needle.count)).contains { start in
            bytes[start..<(start + needle.count)].elementsEqual(needle)
        }
    }

    /// An ASN.1 time as Unix seconds.
    private static func seconds(_ time: UnsafePointer<ASN1_TIME>?) -> Int64? {
        guard let time else { return nil }
        var parts = tm()
        guard ASN1_TIME_to_tm(time, &parts) == 1 else { return nil }
        return Int64(timegm(&parts))
    }
}
