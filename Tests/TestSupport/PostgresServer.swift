import Foundation
import Glibc

/// A real PostgreSQL (Debian's) on its own loopback port, in its own data directory, run as the `postgres`
/// user (it refuses root), with coturn's `turn_secret` table in a database `coturn` owned by user `coturn`.
public final class PostgresServer: Sendable {
    public let port: UInt16
    public let password: String
    public let directory: TemporaryDirectory
    public let passwordFile: String
    private let process: ChildProcess

    static func binary(_ name: String) throws -> String {
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).sorted()
        guard let version = versions.last(where: { access("\(root)/\($0)/bin/\(name)", X_OK) == 0 }) else {
            throw TestFailure("\(name) not found under \(root): install Debian's postgresql (scripts/test.sh does)")
        }
        return "\(root)/\(version)/bin/\(name)"
    }

    /// With `tls`, the server offers TLS with that certificate and key and refuses logins without it.
    public init(tls: (certificate: String, key: String)? = nil) throws {
        directory = try TemporaryDirectory("turnkeeper-postgres")
        port = try LoopbackUDP.freePort()
        password = UUID().uuidString.replacingOccurrences(of: "-", with: "")
        passwordFile = try directory.write("password", password + "\n")
        let runuser = "/usr/sbin/runuser"
        let data = directory.file("data")
        _ = try ProcessRunner.run("/bin/chown", ["postgres", directory.path])
        let initdb = try ProcessRunner.run(
            runuser, ["-u", "postgres", "--", try Self.binary("initdb"), "-D", data, "-A", "trust", "-U", "postgres"],
            timeout: .seconds(120))
        guard initdb.status == 0 else { throw TestFailure("initdb failed: \(initdb)") }
        // Password logins over TCP, as coturn and turnkeeper make them; trust over the test's own socket.
        try "local all all trust\n\(tls == nil ? "host" : "hostssl") all all 127.0.0.1/32 scram-sha-256\n".write(
            toFile: data + "/pg_hba.conf", atomically: false, encoding: .utf8)
        var tlsArguments: [String] = []
        if let tls {
            // PostgreSQL insists that its key is its own and private.
            for (source, name) in [(tls.certificate, "server.crt"), (tls.key, "server.key")] {
                try FileManager.default.copyItem(atPath: source, toPath: data + "/" + name)
                _ = try ProcessRunner.run("/bin/chown", ["postgres", data + "/" + name])
                chmod(data + "/" + name, 0o600)
            }
            tlsArguments = ["-c", "ssl=on", "-c", "ssl_cert_file=server.crt", "-c", "ssl_key_file=server.key"]
        }
        process = try ChildProcess(
            runuser,
            [
                "-u", "postgres", "--", try Self.binary("postgres"), "-D", data, "-p", String(port), "-k",
                directory.path,
                "-c", "listen_addresses=127.0.0.1",
            ] + tlsArguments,
            stdoutPath: directory.file("postgres.log"), stderrPath: directory.file("postgres.log"))
        // Listening is not ready: while it starts up it accepts and then refuses ("the database system is
        // starting up"). pg_isready, on its own socket, says when it takes connections (polled, at most 60 s).
        let isReady = try Self.binary("pg_isready")
        var ready = false
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(60)
        while !ready && clock.now < deadline && process.isRunning {
            ready =
                try ProcessRunner.run(isReady, ["-q", "-h", directory.path, "-p", String(port)], timeout: .seconds(10))
                .status == 0
            if !ready { usleep(100_000) }
        }
        guard ready, LoopbackUDP.tcpAccepts(port: port, timeout: .seconds(30)) else {
            process.terminate()
            let log = (try? String(contentsOfFile: directory.file("postgres.log"), encoding: .utf8)) ?? ""
            throw TestFailure("PostgreSQL did not become ready on 127.0.0.1:\(port):\n\(log.suffix(2000))")
        }
        // coturn's schema (its schema.sql); the password goes in on stdin, never on a command line.
        let setup = try ProcessRunner.run(
            runuser,
            [
                "-u", "postgres", "--", try Self.binary("psql"), "-h", directory.path, "-p", String(port), "-U",
                "postgres",
                "-v", "ON_ERROR_STOP=1", "-q",
            ],
            stdin: """
                CREATE ROLE coturn LOGIN PASSWORD '\(password)';
                CREATE DATABASE coturn OWNER coturn;
                \\c coturn
                CREATE TABLE turn_secret (realm varchar(127) default '', value varchar(256), primary key (realm, value));
                ALTER TABLE turn_secret OWNER TO coturn;
                """,
            timeout: .seconds(60))
        guard setup.status == 0 else {
            process.terminate()
            throw TestFailure("setting up coturn's database failed: \(setup)")
        }
    }

    /// coturn's line for this database.
    public var coturnLine: String {
        "psql-userdb=\"host=127.0.0.1 port=\(port) dbname=coturn user=coturn password=\(password) connect_timeout=5\""
    }

    /// Runs SQL as the superuser, in coturn's database (roles and grants for a test).
    public func sql(_ statements: String) throws {
        let output = try ProcessRunner.run(
            "/usr/sbin/runuser",
            [
                "-u", "postgres", "--", try Self.binary("psql"), "-h", directory.path, "-p", String(port), "-U",
                "postgres", "-v", "ON_ERROR_STOP=1", "-q", "coturn",
            ], stdin: statements, timeout: .seconds(60))
        guard output.status == 0 else { throw TestFailure("psql failed: \(output)") }
    }

    /// coturn's secrets table as SQL, as a backup taken now would hold it.
    public func dump() throws -> String {
        let output = try ProcessRunner.run(
            "/usr/sbin/runuser",
            [
                "-u", "postgres", "--", try Self.binary("pg_dump"), "-h", directory.path, "-p", String(port), "-U",
                "postgres", "--data-only", "--table=turn_secret", "coturn",
            ], timeout: .seconds(60))
        guard output.status == 0 else { throw TestFailure("pg_dump failed: \(output)") }
        return output.stdout
    }

    /// Restores a ``dump()``: the table emptied and refilled from it, as a restore from that backup leaves it.
    public func restore(_ dump: String) throws {
        let output = try ProcessRunner.run(
            "/usr/sbin/runuser",
            [
                "-u", "postgres", "--", try Self.binary("psql"), "-h", directory.path, "-p", String(port), "-U",
                "postgres", "-v", "ON_ERROR_STOP=1", "-q", "coturn",
            ], stdin: "TRUNCATE turn_secret;\n" + dump, timeout: .seconds(60))
        guard output.status == 0 else { throw TestFailure("restoring the dump failed: \(output)") }
    }

    public func stop() { process.terminate(grace: .seconds(20)) }

    public func remove() {
        stop()
        directory.remove()
    }
}
