import Foundation
import Glibc
import TestSupport
import Testing

/// `turns:` servers that attack the certificate lookup the probe does after a failed verified handshake: a
/// malformed certificate must not crash it, and a server that accepts and never speaks must not hold it.
@Suite("Hostile TLS servers", .mayBlock, .tags(.live))
struct HostileTLSTests {
    /// A TLS server on loopback (Python's ssl): `mode` "serve" completes every handshake with the certificate;
    /// "silent" completes the first and leaves every later connection without a word.
    final class Server: Sendable {
        let process: ChildProcess
        let port: Int

        init(mode: String, certificate: String, key: String, in directory: TemporaryDirectory) throws {
            let script = try directory.write(
                "server.py",
                """
                import socket, ssl, sys
                mode, cert, key = sys.argv[1], sys.argv[2], sys.argv[3]
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.load_cert_chain(cert, key)
                s = socket.socket()
                s.bind(('127.0.0.1', 0))
                s.listen(16)
                print(s.getsockname()[1], flush=True)
                held = []
                for n in range(1, 200):
                    c, _ = s.accept()
                    if mode == 'silent' and n >= 2:
                        held.append(c)
                        continue
                    try:
                        held.append(ctx.wrap_socket(c, server_side=True))
                    except Exception:
                        c.close()
                """)
            let output = directory.file("server-\(mode).out")
            process = try ChildProcess(
                try ProcessRunner.which("python3", package: "python3"), [script, mode, certificate, key],
                stdoutPath: output)
            let clock = ContinuousClock()
            let deadline = clock.now + .seconds(20)
            var port: Int?
            while port == nil {
                port = (try? String(contentsOfFile: output, encoding: .utf8))?.split(separator: "\n").first
                    .flatMap { Int($0) }
                guard clock.now < deadline, process.isRunning else { throw TestFailure("the TLS server did not start") }
                if port == nil { usleep(20_000) }  // polls for the server's first line
            }
            self.port = port!
        }

        func stop() { _ = process.terminate() }
    }

    /// A self-signed certificate whose IP subjectAltName is 5 bytes long: neither IPv4 nor IPv6.
    static func malformedCertificate(in directory: TemporaryDirectory) throws -> (String, String) {
        let openssl = try ProcessRunner.which("openssl", package: "openssl")
        let key = directory.file("key.pem")
        let certificate = directory.file("cert.pem")
        let made = try ProcessRunner.run(
            openssl,
            [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
                "-out", certificate, "-subj", "/CN=hostile", "-days", "1",
                "-addext", "subjectAltName=DER:300787050102030405",
            ])
        guard made.status == 0 else { throw TestFailure("openssl: \(made)") }
        return (certificate, key)
    }

    @Test("A certificate with a 5-byte IP name: the probe reports the failed verification and does not crash")
    func malformedIPName() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (certificate, key) = try Self.malformedCertificate(in: directory)
        let server = try Server(mode: "serve", certificate: certificate, key: key, in: directory)
        defer { server.stop() }
        let output = try TurnkeeperBinary.run(["probe", "turns:127.0.0.1:\(server.port)", "--timeout", "2s"])
        #expect(output.status == 1, "\(output)")
        #expect(output.stdout.contains("5 bytes"), "\(output)")
    }

    @Test("A server that accepts the certificate lookup and never speaks: the probe still finishes, and says so")
    func silentLookup() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (certificate, key) = try Self.malformedCertificate(in: directory)
        let server = try Server(mode: "silent", certificate: certificate, key: key, in: directory)
        defer { server.stop() }
        // ProcessRunner fails the test if the probe has not exited within its 30 s; the probe's own limit is 2 s.
        let output = try TurnkeeperBinary.run(["probe", "turns:127.0.0.1:\(server.port)", "--timeout", "2s"])
        #expect(output.status == 1, "\(output)")
    }
}
