import Foundation
import TestSupport
import Testing
import TurnkeeperCore
import TurnkeeperCredentials
import TurnkeeperStores

/// turnkeeper's own PostgreSQL client against a real PostgreSQL with TLS, and against servers that lie.
@Suite("coturn's PostgreSQL store: TLS, and servers that lie", .mayBlock, .tags(.live))
struct CoturnPostgresStoreTests {
    static let secret = try! TurnSecret(validating: "PostgresTLS0123456789abcdefghijklmnopqrstuvwxyzAB")

    @Test("TLS checked against the private CA: rows written, read, deleted; the wrong CA or no TLS is refused")
    func tls() async throws {
        let directory = try TemporaryDirectory("turnkeeper-pg-tls")
        defer { directory.remove() }
        let certificates = try TestCertificates(in: directory)
        let server = try PostgresServer(tls: certificates.good)
        defer { server.remove() }
        func store(host: String = "127.0.0.1", tls: Bool = true, caFile: String? = certificates.caFile)
            -> CoturnPostgresStore
        {
            CoturnPostgresStore(
                endpoint: PostgresEndpoint(
                    host: host, port: Int(server.port), database: "coturn", user: "coturn", password: server.password,
                    tls: tls, caFile: caFile, timeout: .seconds(30)),
                realm: "turn.example.org")
        }
        try await store().add(Self.secret)
        #expect(try await store(host: "localhost").secrets() == [Self.secret], "the name checked, not only the address")
        try await store().proveWritable()
        try await store().remove(Self.secret)
        #expect(try await store().secrets() == [])

        // The system's roots do not know the private CA: refused before any login.
        await #expect { try await store(caFile: nil).secrets() } throws: { error in
            (error as? TurnkeeperError)?.code == .storeUnreachable && "\(error)".contains("TLS")
        }
        // Without TLS the server's pg_hba.conf refuses the login (hostssl only), and says so.
        await #expect { try await store(tls: false).secrets() } throws: { error in
            (error as? TurnkeeperError)?.code == .storeRefused && "\(error)".contains("refused the login")
        }
    }

    @Test("A server that refuses TLS, injects bytes after its yes, or never answers: refused, nothing sent in clear")
    func lyingServers() async throws {
        let directory = try TemporaryDirectory("turnkeeper-pg-liar")
        defer { directory.remove() }
        for (mode, tls, expected) in [
            ("no", true, "does not offer TLS"),
            ("inject", true, "not PostgreSQL's"),
            ("silent", false, "did not answer within"),
            // Without TLS only a server that proves it knows the password (SCRAM) gets anything.
            ("trust", false, "without asking for its password"),
            ("cleartext", false, "password in clear over a connection without TLS"),
        ] {
            let port = try LoopbackUDP.freePort()
            let received = directory.file("received-\(mode)")
            let python = try ProcessRunner.which("python3", package: "python3")
            let liar = try ChildProcess(
                python, ["-c", Self.liar, String(port), mode, received], stdoutPath: directory.file("liar.log"),
                stderrPath: directory.file("liar.log"))
            defer { _ = liar.terminate() }
            #expect(LoopbackUDP.tcpAccepts(port: port, timeout: .seconds(20)))
            // The deadline is what the silent liar tests; the others answer, however loaded the machine, and a
            // generous deadline keeps a slow answer from passing for silence.
            let store = CoturnPostgresStore(
                endpoint: PostgresEndpoint(
                    host: "127.0.0.1", port: Int(port), password: "not-sent", tls: tls,
                    timeout: mode == "silent" ? .seconds(1) : .seconds(30)),
                realm: "r")
            do {
                _ = try await store.secrets()
                Issue.record("\(mode): the store accepted a lying server")
            } catch {
                #expect("\(error)".contains(expected), "\(mode): \(error)")
            }
            if tls {
                // Only the 8-byte SSLRequest reached the server: no startup message, no user name in clear.
                // The liar writes the file once the connection closes (or after 2 s).
                for _ in 0..<100 where !FileManager.default.fileExists(atPath: received) {
                    try await Task.sleep(for: .milliseconds(100))
                }
                let bytes = (try? Data(contentsOf: URL(fileURLWithPath: received))) ?? Data()
                #expect(Array(bytes) == [0, 0, 0, 8, 4, 210, 22, 47], "\(mode): \(Array(bytes))")
            }
        }
    }

    @Test("TLS to a port where nothing listens: unreachable, said plainly")
    func nothingListening() async throws {
        let store = CoturnPostgresStore(
            endpoint: PostgresEndpoint(
                host: "127.0.0.1", port: Int(try LoopbackUDP.freePort()), password: "x", tls: true,
                timeout: .seconds(2)),
            realm: "r")
        await #expect { try await store.secrets() } throws: { error in
            (error as? TurnkeeperError)?.code == .storeUnreachable
        }
    }

    /// A TCP server on loopback: "no" answers SSLRequest with N, "inject" with S and a plaintext message,
    /// "silent" says nothing, "trust" lets anyone in, "cleartext" asks for the password in clear. It records
    /// what it received after an SSLRequest.
    static let liar = """
        import socket, sys, time
        port, mode, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
        server = socket.socket(); server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port)); server.listen(4)
        while True:
            connection, _ = server.accept()
            if mode == "silent":
                continue
            if mode in ("trust", "cleartext"):
                if not connection.recv(4096):  # the test's own check that the port accepts
                    connection.close(); continue
                connection.sendall(b"R\\x00\\x00\\x00\\x08\\x00\\x00\\x00" + (b"\\x00" if mode == "trust" else b"\\x03")
                                   + b"Z\\x00\\x00\\x00\\x05I")
                # Read what the client sends until it closes: closing first would answer its last bytes (its
                # Terminate) with a reset, which a client slowed by a busy machine met before the answer above.
                # 30 s is the client's own deadline.
                connection.settimeout(30)
                try:
                    while connection.recv(4096): pass
                except OSError:
                    pass
                connection.close(); continue
            connection.settimeout(5)
            data = connection.recv(8)
            if len(data) < 8:
                connection.close(); continue
            connection.sendall(b"N" if mode == "no" else b"S" + b"R\\x00\\x00\\x00\\x08\\x00\\x00\\x00\\x00")
            deadline = time.time() + 2
            try:
                while time.time() < deadline:
                    more = connection.recv(4096)
                    if not more: break
                    data += more
            except OSError:
                pass
            open(path, "wb").write(data)
            connection.close()
        """
}
