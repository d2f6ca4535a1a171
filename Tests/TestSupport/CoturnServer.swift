import Foundation
import Glibc

/// A real coturn (`turnserver -c FILE`) on its own loopback ports, started and stopped by PID.
/// Never the system service.
public final class CoturnServer: @unchecked Sendable {
    public let port: UInt16
    public let realm: String
    public let directory: TemporaryDirectory
    public let configPath: String
    public let logPath: String
    private let process: Process

    /// Starts coturn with REST authentication (`use-auth-secret`) and one `static-auth-secret` line per
    /// secret, and returns once it answers a STUN Binding request. `extraLines` are appended to its config.
    public init(secrets: [String], realm: String = "turnkeeper.test", extraLines: [String] = []) throws {
        let turnserver = try ProcessRunner.which("turnserver", package: "coturn")
        directory = try TemporaryDirectory("turnkeeper-coturn")
        self.realm = realm
        port = try LoopbackUDP.freePort()
        let relayBase = try LoopbackUDP.freePort(in: 40000...60000, span: 64)
        let template = try String(contentsOfFile: Self.templatePath, encoding: .utf8)
        let rendered =
            template
            .replacingOccurrences(of: "@PORT@", with: String(port))
            .replacingOccurrences(of: "@RELAY_MIN@", with: String(relayBase))
            .replacingOccurrences(of: "@RELAY_MAX@", with: String(relayBase + 63))
            .replacingOccurrences(of: "@REALM@", with: realm)
            .replacingOccurrences(of: "@DIR@", with: directory.path)
        var lines = [rendered]
        lines += secrets.map { "static-auth-secret=\($0)" }
        lines += extraLines
        configPath = try directory.write("turnserver.conf", lines.joined(separator: "\n") + "\n", mode: 0o600)
        logPath = directory.file("turnserver.log")
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)

        process = Process()
        process.executableURL = URL(fileURLWithPath: turnserver)
        process.arguments = ["-c", configPath]
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.standardOutput = log
        process.standardError = log
        try process.run()

        guard LoopbackUDP.stunBindingAnswered(port: port, timeout: .seconds(15)) else {
            stop()
            let tail = (try? String(contentsOfFile: logPath, encoding: .utf8))?.suffix(2000) ?? ""
            throw TestFailure("coturn did not answer STUN on 127.0.0.1:\(port) within 15 s. Log:\n\(tail)")
        }
    }

    /// coturn/loopback.conf.in, shared with scripts/demo.sh.
    static var templatePath: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("coturn/loopback.conf.in").path
    }

    public var pid: Int32 { process.processIdentifier }

    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// SIGTERM, then SIGKILL if it has not gone within 5 s.
    public func stop() {
        guard process.isRunning else {
            directory.remove()
            return
        }
        kill(process.processIdentifier, SIGTERM)
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(5)
        while process.isRunning && clock.now < deadline {
            usleep(20_000)
        }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        directory.remove()
    }

    deinit { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
}

/// coturn's `turnutils_peer`: a UDP echo the relay can send to. It binds `port` and `port + 1`.
public final class TurnPeer: @unchecked Sendable {
    public let port: UInt16
    private let process: Process

    public init() throws {
        let binary = try ProcessRunner.which("turnutils_peer", package: "coturn")
        port = try LoopbackUDP.freePort(span: 2)
        process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["-L", "127.0.0.1", "-p", String(port)]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let ping: [UInt8] = Array("turnkeeper-ping".utf8)
        guard LoopbackUDP.ask(port: port, payload: ping, timeout: .seconds(10), matches: { $0 == ping }) != nil else {
            stop()
            throw TestFailure("turnutils_peer did not echo on 127.0.0.1:\(port) within 10 s")
        }
    }

    public func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
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
