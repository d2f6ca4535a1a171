import Foundation

/// A private CA and server certificates made for one test run by Python's `cryptography`:
/// a good one for localhost, 127.0.0.1 and ::1; one that expired; one for another name; and for
/// turn.example.com (the name provision tests use) one valid now, one in DER, one expired, one not yet
/// valid and one that expires in 3 days.
public struct TestCertificates: Sendable {
    public let caFile: String
    public let good: (certificate: String, key: String)
    public let expired: (certificate: String, key: String)
    public let wrongName: (certificate: String, key: String)
    public let turn: (certificate: String, key: String)
    /// `turn`'s certificate in DER, not PEM.
    public let turnDER: String
    public let turnExpired: (certificate: String, key: String)
    public let turnNotYetValid: (certificate: String, key: String)
    public let turnExpiringSoon: (certificate: String, key: String)
    /// For `t*.example.com`: a partial wildcard, which WebRTC stacks refuse for turn.example.com.
    public let turnPartialWildcard: (certificate: String, key: String)
    /// For turn.example.com, but for TLS clients only (extended key usage clientAuth).
    public let turnClientOnly: (certificate: String, key: String)
    /// For the NAT lab's TURN address, 203.0.113.10: valid 30 days, and expiring in 5.
    public let lab: (certificate: String, key: String)
    public let labExpiringSoon: (certificate: String, key: String)

    static let script = """
        import datetime, ipaddress, sys
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
        out = sys.argv[1]
        now = datetime.datetime.now(datetime.timezone.utc)
        def name(cn): return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        def save(path, data):
            with open(path, "wb") as f: f.write(data)
        def pem_key(key):
            return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = (x509.CertificateBuilder().subject_name(name("turnkeeper test CA")).issuer_name(name("turnkeeper test CA"))
              .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
              .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
              .sign(ca_key, hashes.SHA256()))
        save(out + "/ca.pem", ca.public_bytes(serialization.Encoding.PEM))
        def leaf(label, names, start, end, eku=None):
            key = ec.generate_private_key(ec.SECP256R1())
            sans = [x509.IPAddress(ipaddress.ip_address(n)) if n[0].isdigit() or ":" in n else x509.DNSName(n) for n in names]
            builder = (x509.CertificateBuilder().subject_name(name(names[0])).issuer_name(ca.subject)
                    .public_key(key.public_key()).serial_number(x509.random_serial_number())
                    .not_valid_before(start).not_valid_after(end)
                    .add_extension(x509.SubjectAlternativeName(sans), critical=False))
            if eku: builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
            cert = builder.sign(ca_key, hashes.SHA256())
            save(out + "/" + label + ".pem", cert.public_bytes(serialization.Encoding.PEM))
            save(out + "/" + label + ".der", cert.public_bytes(serialization.Encoding.DER))
            save(out + "/" + label + ".key", pem_key(key))
        day = datetime.timedelta(days=1)
        leaf("good", ["localhost", "127.0.0.1", "::1"], now - day, now + 30 * day)
        leaf("expired", ["localhost", "127.0.0.1", "::1"], now - 30 * day, now - day)
        leaf("wrong-name", ["turn.elsewhere.test"], now - day, now + 30 * day)
        leaf("turn", ["turn.example.com"], now - day, now + 30 * day)
        leaf("turn-expired", ["turn.example.com"], now - 30 * day, now - day)
        leaf("turn-not-yet", ["turn.example.com"], now + 2 * day, now + 30 * day)
        leaf("turn-soon", ["turn.example.com"], now - day, now + 3 * day)
        leaf("turn-partial", ["t*.example.com"], now - day, now + 30 * day)
        leaf("lab", ["203.0.113.10"], now - day, now + 30 * day)
        leaf("lab-soon", ["203.0.113.10"], now - day, now + 5 * day)
        from cryptography.x509.oid import ExtendedKeyUsageOID
        leaf("turn-client", ["turn.example.com"], now - day, now + 30 * day, [ExtendedKeyUsageOID.CLIENT_AUTH])
        """

    public init(in directory: TemporaryDirectory) throws {
        let python = try ProcessRunner.which("python3", package: "python3 (with the cryptography module)")
        let output = try ProcessRunner.run(python, ["-c", Self.script, directory.path])
        guard output.status == 0 else { throw TestFailure("making test certificates failed: \(output)") }
        caFile = directory.file("ca.pem")
        good = (directory.file("good.pem"), directory.file("good.key"))
        expired = (directory.file("expired.pem"), directory.file("expired.key"))
        wrongName = (directory.file("wrong-name.pem"), directory.file("wrong-name.key"))
        turn = (directory.file("turn.pem"), directory.file("turn.key"))
        turnDER = directory.file("turn.der")
        turnExpired = (directory.file("turn-expired.pem"), directory.file("turn-expired.key"))
        turnNotYetValid = (directory.file("turn-not-yet.pem"), directory.file("turn-not-yet.key"))
        turnExpiringSoon = (directory.file("turn-soon.pem"), directory.file("turn-soon.key"))
        turnPartialWildcard = (directory.file("turn-partial.pem"), directory.file("turn-partial.key"))
        turnClientOnly = (directory.file("turn-client.pem"), directory.file("turn-client.key"))
        lab = (directory.file("lab.pem"), directory.file("lab.key"))
        labExpiringSoon = (directory.file("lab-soon.pem"), directory.file("lab-soon.key"))
    }
}
