import Foundation
import Glibc

/// A real redis-server (Debian's) on its own loopback port, with a password, stopped by PID.
public final class RedisServer: Sendable {
    public let port: UInt16
    public let password: String
    public let directory: TemporaryDirectory
    public let passwordFile: String
    private let process: ChildProcess

    public init() throws {
        let server = try ProcessRunner.which("redis-server", package: "redis-server")
        directory = try TemporaryDirectory("turnkeeper-redis")
        port = try LoopbackUDP.freePort()
        password = UUID().uuidString.replacingOccurrences(of: "-", with: "")
        passwordFile = try directory.write("password", password + "\n")
        // The password goes in the config file (0600), never on the command line.
        let config = try directory.write(
            "redis.conf",
            """
            bind 127.0.0.1
            port \(port)
            requirepass \(password)
            dir \(directory.path)
            save ""
            appendonly no
            daemonize no
            """)
        process = try ChildProcess(
            server, [config], stdoutPath: directory.file("redis.log"), stderrPath: directory.file("redis.log"))
        guard LoopbackUDP.tcpAccepts(port: port, timeout: .seconds(15)) else {
            process.terminate()
            throw TestFailure("redis-server did not listen on 127.0.0.1:\(port)")
        }
    }

    /// coturn's line for this database.
    public var coturnLine: String {
        "redis-userdb=\"ip=127.0.0.1 dbname=0 password=\(password) port=\(port) connect_timeout=5\""
    }

    public var isRunning: Bool { process.isRunning }

    public func stop() {
        process.terminate()
    }

    public func remove() {
        stop()
        directory.remove()
    }
}
