public import TurnkeeperCore
import TurnkeeperCrypto

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
        let chain: [X509Certificate]
        do {
            chain = try X509Certificate.pemChain(certificateFile.bytes)
        } catch {
            throw fail("--cert \(certificatePath) is not a PEM certificate: " + certificateReason(error.kind))
        }
        let leaf = chain[0]

        var keyBytes = try FileContents.read(keyPath, limit: 1 << 20).bytes
        defer { keyBytes.withUnsafeMutableBytes { raw in raw.indices.forEach { raw[$0] = 0 } } }
        let key: PEMPrivateKey
        do {
            key = try PEMPrivateKey(pem: keyBytes)
        } catch {
            throw fail("--key \(keyPath) is not a PEM private key: " + keyReason(error.kind))
        }

        guard leaf.isCertified(key) else {
            throw fail(
                "--key \(keyPath) does not belong to --cert \(certificatePath): the certificate's public key is "
                    + "not this key's, so coturn would fail every TLS handshake. Give the key the certificate was "
                    + "issued for (with certbot, privkey.pem beside fullchain.pem).")
        }

        // No CN fallback, and no partial wildcards (t*.example.com), which browsers' WebRTC stacks refuse.
        guard leaf.covers(host: domain) else {
            throw fail(
                "--cert \(certificatePath) is not for \(domain): none of the DNS names in its subjectAltName covers "
                    + "it, so clients reaching turns:\(domain):5349 would refuse it. List its names with `openssl x509 "
                    + "-noout -ext subjectAltName -in \(certificatePath)`, and obtain a certificate for \(domain).")
        }

        // A certificate whose key usage forbids serving TLS (a client-only certificate) fails every handshake.
        guard leaf.servesTLS else {
            throw fail(
                "--cert \(certificatePath) may not be used by a TLS server (its key usage or extended key usage "
                    + "excludes serverAuth), so clients would refuse it. Obtain a server certificate for \(domain).")
        }

        guard let notBefore = leaf.notValidBefore, let notAfter = leaf.notValidAfter else {
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

    private static func certificateReason(_ kind: X509Error.Kind) -> String {
        switch kind {
        case .keyNotCertificate:
            "it has no BEGIN CERTIFICATE block; it holds a private key: are --cert and --key swapped?"
        case .undecodableBlock(let block):
            "certificate block \(block) does not decode. Check that the file is whole (with certbot, name "
                + "fullchain.pem)."
        default:
            "it has no BEGIN CERTIFICATE block; coturn reads PEM only. A DER file converts with `openssl x509 "
                + "-inform der -in FILE -out FILE.pem`."
        }
    }

    private static func keyReason(_ kind: X509Error.Kind) -> String {
        switch kind {
        case .encryptedKey:
            "it is encrypted, and coturn cannot ask for a passphrase. Remove it with `openssl pkey -in FILE -out "
                + "FILE.plain`, readable by root and the turnserver group only."
        case .certificateNotKey: "it holds a certificate, not a key: are --cert and --key swapped?"
        case .undecodable: "its key block does not decode. Check that the file is whole."
        default: "it has no BEGIN PRIVATE KEY block; coturn reads PEM only."
        }
    }
}
