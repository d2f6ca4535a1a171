import Foundation
import Glibc
import TestSupport
import Testing

/// What turnkeeper's process lets others see: the descriptors its children inherit, and whether its memory and
/// environment can be read through /proc by a process of the same user.
@Suite("Process hygiene", .mayBlock, .tags(.live))
struct ProcessHygieneTests {
    @Test("A restart command the daemon runs holds only standard input, output and error")
    func childDescriptors() async throws {
        let lab = try await runOffPool { try DaemonTests.Lite() }  // starts coturn and waits for it
        defer { lab.stop() }
        let listing = lab.directory.file("restart-descriptors.txt")
        let config = try String(contentsOfFile: lab.config, encoding: .utf8).replacingOccurrences(
            of: "restart_command: [/bin/true]",
            with: "restart_command: [/bin/sh, -c, \"ls -l /proc/self/fd > \(listing)\"]")
        _ = try lab.directory.write("turnkeeper.yaml", config)
        let daemon = try lab.start()
        defer { daemon.stop() }
        // Step 3 restarts Synapse; by step 4 the listing is written.
        try await daemon.waitForLog("step 4:", timeout: .seconds(60))
        // The daemon itself holds event loops, sockets and files: more than a child may see.
        let held = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(daemon.process.pid)/fd")
        #expect(held.count > 3)

        let text = try String(contentsOfFile: listing, encoding: .utf8)
        // "lr-x------ 1 root root 64 Nov 27 15:00 3 -> /proc/4242/fd": the descriptor, then its target.
        let entries: [(fd: Int, target: String)] = text.split(separator: "\n").compactMap { line in
            guard let arrow = line.range(of: " -> "),
                let fd = Int(line[..<arrow.lowerBound].split(separator: " ").last ?? "")
            else { return nil }
            return (fd, String(line[arrow.upperBound...]))
        }
        #expect(Set(entries.map(\.fd)).isSuperset(of: [0, 1, 2]), "\(text)")
        // Beyond those, only the directory ls reads to make the listing.
        let inherited = entries.filter { $0.fd > 2 && !($0.target.hasPrefix("/proc/") && $0.target.hasSuffix("/fd")) }
        #expect(inherited.isEmpty, "the restart command inherited:\n\(text)")
    }

    /// argv prefix that runs a program as nobody, with no supplementary groups.
    static func asNobody() throws -> (String, [String]) {
        let setpriv = try ProcessRunner.which("setpriv", package: "util-linux")
        return (setpriv, ["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
    }

    /// The owner of /proc/PID/environ: the process's user if it is dumpable, root if not.
    static func environOwner(_ pid: pid_t) throws -> uid_t {
        var info = stat()
        guard stat("/proc/\(pid)/environ", &info) == 0 else { throw TestFailure("no /proc/\(pid)/environ") }
        return info.st_uid
    }

    /// The real user ID from /proc/PID/status.
    static func realUser(_ pid: pid_t) -> uid_t? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Uid:") })
        else { return nil }
        return line.split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst().first.flatMap { uid_t($0) }
    }

    @Test("turnkeeper makes itself non-dumpable: a process of its own user cannot read its environment")
    func nonDumpable() async throws {
        let (setpriv, prefix) = try Self.asNobody()
        // A TURN server that never answers keeps the probe running; its first request shows that turnkeeper's
        // main() has run.
        let server = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(server) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(server, $0, length) == 0 && getsockname(server, $0, &length) == 0
            }
        }
        #expect(bound)
        let port = Int(UInt16(bigEndian: address.sin_port))
        let probe = try ChildProcess(
            setpriv,
            prefix + [TurnkeeperBinary.path, "probe", "turn:127.0.0.1:\(port)?transport=udp", "--timeout", "30s"])
        defer { probe.terminate() }
        // Off the cooperative pool: other tests need its threads while this one waits.
        let sent = try await runOffPool {
            var waiting = pollfd(fd: server, events: Int16(POLLIN), revents: 0)
            return poll(&waiting, 1, 30_000)
        }
        try #require(sent == 1, "the probe sent nothing")

        #expect(Self.realUser(probe.pid) == 65534)
        #expect(try Self.environOwner(probe.pid) == 0)
        let pid = probe.pid
        let read = try await runOffPool {
            try ProcessRunner.run(setpriv, prefix + ["/bin/cat", "/proc/\(pid)/environ"])
        }
        // Only the status and error in the message: the output would be the environment itself.
        #expect(read.status != 0 && read.stderr.contains("Permission denied"), "exit \(read.status): \(read.stderr)")

        // The same checks on an ordinary process of that user come out the other way.
        let sleeper = try ChildProcess(setpriv, prefix + ["/bin/sleep", "60"])
        defer { sleeper.terminate() }
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(10)
        // setpriv changes user, then execs sleep: wait for both.
        while !(Self.realUser(sleeper.pid) == 65534
            && (try? String(contentsOfFile: "/proc/\(sleeper.pid)/comm", encoding: .utf8)) == "sleep\n")
        {
            guard clock.now < deadline else { throw TestFailure("sleep never ran as nobody") }
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(try Self.environOwner(sleeper.pid) == 65534)
        let sleeping = sleeper.pid
        let control = try await runOffPool {
            try ProcessRunner.run(setpriv, prefix + ["/bin/cat", "/proc/\(sleeping)/environ"])
        }
        #expect(control.status == 0, "exit \(control.status): \(control.stderr)")
    }

    @Test("An unprivileged user's probe over TCP reaches coturn: no socket option that only root may set")
    func tcpProbeAsNobody() throws {
        let coturn = try CoturnServer(secrets: [])
        defer { coturn.stop() }
        let (setpriv, prefix) = try Self.asNobody()
        // NIO's socketOption(.tcp_nodelay) is SOL_SOCKET level, where its number means SO_DEBUG: root only.
        let output = try ProcessRunner.run(
            setpriv, prefix + [TurnkeeperBinary.path, "probe", "turn:127.0.0.1:\(coturn.port)?transport=tcp"])
        #expect(output.status == 0, "\(output)")
        #expect(output.stdout.contains("PASS  binding") || output.stdout.contains("pass  binding"), "\(output)")
    }
}
