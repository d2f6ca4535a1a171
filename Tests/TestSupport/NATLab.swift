import Foundation
import Glibc

/// The NAT lab of scripts/natlab.sh: network namespaces `tk-ID-*`, built for one test and removed by
/// ``down()`` (and by `natlab.sh sweep` if the test process died first). Nothing is sent outside it.
public final class NATLab: Sendable {
    public let id: String
    public let directory: TemporaryDirectory

    static var script: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scripts/natlab.sh").path
    }

    public init() throws {
        _ = try ProcessRunner.which("nft", package: "nftables")
        id = String((0..<6).map { _ in "abcdefghijklmnopqrstuvwxyz0123456789".randomElement()! })
        directory = try TemporaryDirectory("turnkeeper-natlab")
        _ = try? ProcessRunner.run("/bin/bash", [Self.script, "sweep"], timeout: .seconds(60))
        let up = try ProcessRunner.run(
            "/bin/bash", [Self.script, "up", id], timeout: .seconds(60), environment: ["OWNER_PID": String(getpid())])
        guard up.status == 0 else {
            directory.remove()
            throw TestFailure("the NAT lab did not build:\n\(up)")
        }
    }

    public func namespace(_ host: String) -> String { "tk-\(id)-\(host)" }

    /// argv that runs `argv` inside `host`'s namespace.
    public func argv(_ host: String, _ argv: [String]) -> [String] {
        ["/usr/sbin/ip", "netns", "exec", namespace(host)] + argv
    }

    /// Starts a long-running process in `host`, its output in a file of the lab's directory.
    public func start(_ host: String, _ command: [String], output: String) throws -> ChildProcess {
        let full = argv(host, command)
        let path = directory.file(output)
        return try ChildProcess(full[0], Array(full.dropFirst()), stdoutPath: path, stderrPath: path)
    }

    public func run(_ host: String, _ command: [String], timeout: Duration = .seconds(60)) throws -> ProcessOutput {
        let full = argv(host, command)
        return try ProcessRunner.run(full[0], Array(full.dropFirst()), timeout: timeout)
    }

    /// The lab's namespaces that exist right now.
    public var namespaces: [String] {
        let listed = (try? ProcessRunner.run("/usr/sbin/ip", ["netns", "list"], timeout: .seconds(10)))?.stdout ?? ""
        return listed.split(separator: "\n").compactMap { $0.split(separator: " ").first.map(String.init) }
            .filter { $0.hasPrefix("tk-\(id)-") }
    }

    /// Kills every process in the lab and removes its namespaces. Returns the namespaces still left.
    @discardableResult
    public func down() -> [String] {
        _ = try? ProcessRunner.run("/bin/bash", [Self.script, "down", id], timeout: .seconds(60))
        directory.remove()
        return namespaces
    }
}

/// A coturn inside a lab namespace, with its config from coturn/natlab.conf.in.
public final class LabCoturn: Sendable {
    public let process: ChildProcess
    public let directory: TemporaryDirectory
    public let configPath: String
    public var userDatabase: String { directory.file("turndb") }

    static var template: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("coturn/natlab.conf.in").path
    }

    /// - Parameters:
    ///   - listen: listening-ip lines; the first is also the relay-ip.
    ///   - externalIP: `PUBLIC/PRIVATE` for coturn behind NAT, or nil.
    ///   - secrets: static-auth-secret lines; empty means the SQLite userdb alone.
    ///   - extra: lines added to the template's; `without`: the template's lines left out.
    public init(
        lab: NATLab, host: String, listen: [String], externalIP: String? = nil, secrets: [String] = [],
        realm: String = "lab.turnkeeper.test", extra: [String] = [], without: Set<String> = []
    ) throws {
        directory = try TemporaryDirectory("turnkeeper-labcoturn")
        var lines = try String(contentsOfFile: Self.template, encoding: .utf8)
            .replacingOccurrences(of: "@REALM@", with: realm)
            .replacingOccurrences(of: "@DIR@", with: directory.path)
            .split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            .filter { !without.contains($0) }
        lines += extra
        lines += listen.map { "listening-ip=\($0)" } + ["relay-ip=\(listen[0])"]
        if let externalIP { lines.append("external-ip=\(externalIP)") }
        lines += secrets.map { "static-auth-secret=\($0)" }
        configPath = try directory.write("turnserver.conf", lines.joined(separator: "\n") + "\n", mode: 0o600)
        if lines.contains("userdb=\(directory.path)/turndb") {
            try CoturnDatabase.createDebianSchema(at: directory.file("turndb"))
        }
        process = try Self.start(lab: lab, host: host, configPath: configPath, directory: directory, address: listen[0])
    }

    /// A coturn on a config file the test wrote as a whole (such as one `turnkeeper provision` rendered).
    public init(lab: NATLab, host: String, configPath: String, answeringAt address: String) throws {
        directory = try TemporaryDirectory("turnkeeper-labcoturn")
        self.configPath = configPath
        process = try Self.start(lab: lab, host: host, configPath: configPath, directory: directory, address: address)
    }

    private static func start(
        lab: NATLab, host: String, configPath: String, directory: TemporaryDirectory, address: String
    ) throws -> ChildProcess {
        let turnserver = try ProcessRunner.which("turnserver", package: "coturn")
        let process = try lab.start(
            host, [turnserver, "-c", configPath, "--pidfile=\(directory.file("turnserver.pid"))"],
            output: "coturn-\(host)-\(UUID().uuidString.prefix(6)).log")
        // Ready once it answers a STUN Binding from inside its own namespace.
        let client = try ProcessRunner.which("turnutils_stunclient", package: "coturn")
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(15)
        while clock.now < deadline {
            if try lab.run(host, ["/usr/bin/timeout", "2", client, address], timeout: .seconds(5)).status == 0 {
                return process
            }
            usleep(100_000)
        }
        process.terminate()
        throw TestFailure("coturn in \(lab.namespace(host)) did not answer STUN on \(address) within 15 s")
    }

    public func stop() {
        process.terminate()
        directory.remove()
    }
}
