import Foundation
import Glibc
import Synchronization

/// A real coturn (`turnserver -c FILE`) on its own loopback ports, started and stopped by PID.
/// Never the system service.
public final class CoturnServer: Sendable {
    public let port: UInt16
    public let realm: String
    public let directory: TemporaryDirectory
    public let configPath: String
    public let logPath: String
    private let process: Mutex<ChildProcess>
    private let udp: Bool
    /// The lines that replaced `userdb=`, for a second coturn reading the same database.
    public let userDatabaseLines: [String]?
    private let supervised: Bool

    /// argv that stops the running coturn and returns once it has exited (supervised servers only).
    public var restartCommand: [String] { Supervisor.restartCommand(in: directory) }

    /// What a test needs to vary. The defaults are a healthy loopback coturn.
    public struct Options: Sendable {
        public var realm = "turnkeeper.test"
        /// Relay to loopback peers; off, coturn answers 403 to permissions for them.
        public var allowLoopbackPeers = true
        /// Listen on UDP; off (`no-udp`), only TCP and TLS answer.
        public var udp = true
        /// Also listen and relay on ::1.
        public var ipv6 = false
        /// A certificate and key: coturn then listens for TLS on ``tlsPort``.
        public var tls: (certificate: String, key: String)?
        public var extraLines: [String] = []
        /// Run under a loop that starts coturn again whenever it exits, so that ``restartCommand`` can be
        /// handed to turnkeeper as coturn's restart command.
        public var supervised = false
        /// Lines that replace `userdb=` (the SQLite database), such as a `redis-userdb=` line.
        public var userDatabaseLines: [String]?
        /// Run coturn's wall clock this many seconds ahead (negative: behind), through libfaketime: a TURN host
        /// whose clock is off. Not with `supervised`.
        public var clockOffsetSeconds: Int64?

        public init() {}
    }

    public let tlsPort: UInt16?

    /// Starts coturn with REST authentication (`use-auth-secret`) and one `static-auth-secret` line per
    /// secret, and returns once it answers a STUN Binding request (over TCP when UDP is off).
    public convenience init(secrets: [String], realm: String = "turnkeeper.test", extraLines: [String] = []) throws {
        var options = Options()
        options.realm = realm
        options.extraLines = extraLines
        try self.init(secrets: secrets, options: options)
    }

    public init(secrets: [String], options: Options) throws {
        let turnserver = try ProcessRunner.which("turnserver", package: "coturn")
        directory = try TemporaryDirectory("turnkeeper-coturn")
        self.realm = options.realm
        // Two ports each: with two listening IPs (``Options/ipv6``) coturn also listens on port + 1, the RFC 5780
        // alternate port, with SO_REUSEPORT. Handed to the next test, that port would be shared by two coturns
        // (the kernel splitting datagrams between them) or refused to a server that binds without it.
        port = try LoopbackUDP.freePort(span: 2)
        tlsPort = options.tls == nil ? nil : try LoopbackUDP.freePort(span: 2)
        // Below Linux's ephemeral range (32768-60999): outgoing connections of anything else on the machine
        // (their TIME_WAIT sockets) never take these, and listening ports take 20000-32000.
        let relayBase = try LoopbackUDP.freePort(in: 10000...19999, span: 64)
        let template = try String(contentsOfFile: Self.templatePath, encoding: .utf8)
        let rendered =
            template
            .replacingOccurrences(of: "@PORT@", with: String(port))
            .replacingOccurrences(of: "@RELAY_MIN@", with: String(relayBase))
            .replacingOccurrences(of: "@RELAY_MAX@", with: String(relayBase + 63))
            .replacingOccurrences(of: "@REALM@", with: options.realm)
            .replacingOccurrences(of: "@DIR@", with: directory.path)
        var lines = rendered.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if !options.allowLoopbackPeers { lines.removeAll { $0 == "allow-loopback-peers" } }
        if let database = options.userDatabaseLines {
            lines.removeAll { $0.hasPrefix("userdb=") }
            lines += database
        }
        if !options.udp { lines.append("no-udp") }
        if options.ipv6 { lines += ["listening-ip=::1", "relay-ip=::1"] }
        if let tls = options.tls, let tlsPort {
            lines.removeAll { $0 == "no-tls" }
            lines += ["tls-listening-port=\(tlsPort)", "cert=\(tls.certificate)", "pkey=\(tls.key)"]
        }
        lines += secrets.map { "static-auth-secret=\($0)" }
        lines += options.extraLines
        configPath = try directory.write("turnserver.conf", lines.joined(separator: "\n") + "\n", mode: 0o600)
        if lines.contains("userdb=\(directory.path)/turndb") {
            try CoturnDatabase.createDebianSchema(at: directory.file("turndb"))
        }
        logPath = directory.file("turnserver.log")
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)

        udp = options.udp
        userDatabaseLines = options.userDatabaseLines
        supervised = options.supervised
        if options.supervised {
            let supervisor = try Supervisor(
                directory: directory, command: [turnserver, "-c", configPath], logPath: logPath)
            process = Mutex(try supervisor.start())
        } else {
            let environment = try options.clockOffsetSeconds.map { try FakeTime.environment(offsetSeconds: $0) } ?? [:]
            process = Mutex(
                try ChildProcess(
                    turnserver, ["-c", configPath], stdoutPath: logPath, stderrPath: logPath, environment: environment))
        }

        try waitUntilReady()
    }

    /// Stops coturn and starts it again on the same (possibly rewritten) config file, as an admin's
    /// `systemctl restart coturn` would.
    /// `whileStopped` runs between the stop and the start.
    public func restart(whileStopped: () throws -> Void = {}) throws {
        let turnserver = try ProcessRunner.which("turnserver", package: "coturn")
        try process.withLock { process in
            process.terminate()
            try whileStopped()
            process = try ChildProcess(turnserver, ["-c", configPath], stdoutPath: logPath, stderrPath: logPath)
        }
        try waitUntilReady()
    }

    private func waitUntilReady() throws {
        let ready =
            udp
            // A bound, not a measure: a loaded CI machine has taken over 15 s to start a coturn under libfaketime.
            ? LoopbackUDP.stunBindingAnswered(port: port, timeout: .seconds(60))
            : LoopbackUDP.tcpAccepts(port: port, timeout: .seconds(60))
        guard ready else {
            stop()
            let tail = (try? String(contentsOfFile: logPath, encoding: .utf8))?.suffix(2000) ?? ""
            throw TestFailure("coturn did not answer STUN on 127.0.0.1:\(port) within 60 s. Log:\n\(tail)")
        }
    }

    /// coturn/loopback.conf.in, shared with scripts/demo.sh.
    static var templatePath: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("coturn/loopback.conf.in").path
    }

    public var pid: Int32 { process.withLock { $0.pid } }

    /// coturn's SQLite user database (`userdb=`), created as Debian's package creates it before coturn starts.
    public var userDatabase: String { directory.file("turndb") }

    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// SIGTERM, then SIGKILL if it has not gone within 5 s.
    public func stop() {
        if supervised, let supervisor = try? Supervisor(existingIn: directory) {
            process.withLock { supervisor.stop($0) }
        }
        process.withLock { _ = $0.terminate() }
        directory.remove()
    }

    deinit { process.withLock { if $0.isRunning { kill($0.pid, SIGKILL) } } }
}

/// coturn's `turnutils_peer`: a UDP echo the relay can send to. It binds `port` and `port + 1`.
public final class TurnPeer: @unchecked Sendable {
    public let port: UInt16
    private let process: ChildProcess

    public init() throws {
        let binary = try ProcessRunner.which("turnutils_peer", package: "coturn")
        port = try LoopbackUDP.freePort(span: 2)
        process = try ChildProcess(binary, ["-L", "127.0.0.1", "-p", String(port)])
        let ping: [UInt8] = Array("turnkeeper-ping".utf8)
        guard LoopbackUDP.ask(port: port, payload: ping, timeout: .seconds(10), matches: { $0 == ping }) != nil else {
            stop()
            throw TestFailure("turnutils_peer did not echo on 127.0.0.1:\(port) within 10 s")
        }
    }

    public func stop() {
        if process.isRunning {
            kill(process.pid, SIGKILL)
            _ = process.wait(timeout: .seconds(10))
        }
    }

    deinit { stop() }
}

/// coturn's own client, `turnutils_uclient`, allocating with a username and password and relaying
/// `messages` packets to `peer`. Exit 0 means coturn accepted the credential and relayed.
public func coturnClientAllocates(
    server: CoturnServer,
    peer: TurnPeer,
    username: String,
    password: String,
    tcp: Bool = false
) throws -> ProcessOutput {
    let binary = try ProcessRunner.which("turnutils_uclient", package: "coturn")
    var arguments = [
        "-u", username, "-w", password, "-e", "127.0.0.1", "-r", String(peer.port), "-n", "3", "-m", "1", "-c",
    ]
    if tcp { arguments.append("-t") }
    arguments += ["-p", String(server.port), "127.0.0.1"]
    return try ProcessRunner.run(binary, arguments, timeout: .seconds(30))
}
