import Foundation
import Glibc
import Synchronization

/// A real redis-server (Debian's) on its own loopback port, with a password, stopped by PID.
public final class RedisServer: Sendable {
    public let port: UInt16
    public let password: String
    public let directory: TemporaryDirectory
    public let passwordFile: String
    private let process: Mutex<ChildProcess>
    private let configPath: String

    public init() throws {
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
        configPath = config
        process = Mutex(try Self.start(config, port: port, password: password, log: directory.file("redis.log")))
    }

    /// Started when this very server answers PING with our password: something else listening on the port
    /// would not, and a redis-server that could not bind has exited (its log then says why).
    private static func start(_ config: String, port: UInt16, password: String, log: String) throws -> ChildProcess {
        let server = try ProcessRunner.which("redis-server", package: "redis-server")
        let cli = try ProcessRunner.which("redis-cli", package: "redis-tools")
        let process = try ChildProcess(server, [config], stdoutPath: log, stderrPath: log)
        var answered = false
        if LoopbackUDP.tcpAccepts(port: port, timeout: .seconds(15)) {
            for _ in 0..<50 where !answered && process.isRunning {
                let ping = try ProcessRunner.run(
                    cli, ["-h", "127.0.0.1", "-p", String(port), "PING"], timeout: .seconds(10),
                    environment: ["REDISCLI_AUTH": password])
                answered = ping.status == 0 && ping.stdout.hasPrefix("PONG")
                if !answered { usleep(100_000) }
            }
        }
        guard answered, process.isRunning else {
            process.terminate()
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            throw TestFailure("redis-server did not answer PING on 127.0.0.1:\(port):\n\(text.suffix(2000))")
        }
        return process
    }

    /// Stops and starts it again on the same port: without persistence, it comes back empty, as a Redis
    /// restarted with `save ""` and `appendonly no` does.
    public func restart() throws {
        process.withLock { _ = $0.terminate() }
        let fresh = try Self.start(configPath, port: port, password: password, log: directory.file("redis.log"))
        process.withLock { $0 = fresh }
    }

    /// One command through redis-cli as the default user (the password in its environment, not its argv).
    @discardableResult
    public func command(_ arguments: [String]) throws -> String {
        let cli = try ProcessRunner.which("redis-cli", package: "redis-tools")
        let output = try ProcessRunner.run(
            cli, ["-h", "127.0.0.1", "-p", String(port)] + arguments, environment: ["REDISCLI_AUTH": password])
        guard output.status == 0 else { throw TestFailure("redis-cli failed: \(output)") }
        return output.stdout
    }

    /// coturn's line for this database.
    public var coturnLine: String {
        "redis-userdb=\"ip=127.0.0.1 dbname=0 password=\(password) port=\(port) connect_timeout=5\""
    }

    public var isRunning: Bool { process.withLock { $0.isRunning } }

    public func stop() {
        process.withLock { _ = $0.terminate() }
    }

    public func remove() {
        stop()
        directory.remove()
    }
}
