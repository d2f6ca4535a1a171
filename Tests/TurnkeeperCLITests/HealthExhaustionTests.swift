import Foundation
import Glibc
import Synchronization
import TestSupport
import Testing

/// The health listener against idle connections by the hundred: the real `turnkeeper run`, its descriptor
/// limit lowered with prlimit(1) so that the flood would exhaust it, and its CPU time read from /proc.
/// Blocking calls (connect, HTTP, prlimit) run off the cooperative pool, which other tests need.
@Suite("Health listener under a connection flood", .mayBlock, .tags(.live))
struct HealthExhaustionTests {
    /// The daemon's descriptor limit in these tests; the listener holds at most a quarter of it.
    static let limit = 128
    static let cap = limit / 4

    /// `turnkeeper run` under `prlimit --nofile`, which sets the limit and then execs it (same PID).
    struct LimitedDaemon: Sendable {
        let process: ChildProcess
        let log: String

        init(_ lab: DaemonTests.Lite) throws {
            let prlimit = try ProcessRunner.which("prlimit", package: "util-linux")
            log = lab.directory.file("daemon.log")
            process = try ChildProcess(
                prlimit,
                ["--nofile=\(HealthExhaustionTests.limit):\(HealthExhaustionTests.limit)", "--"]
                    + [TurnkeeperBinary.path, "run", "--config", lab.config],
                stdoutPath: log, stderrPath: log)
        }

        var pid: pid_t { process.pid }
        var text: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

        /// The port the daemon serves on (it is given port 0 and logs what it got).
        var port: Int {
            get throws {
                guard let port = DaemonProcess.servingPort(in: text) else {
                    throw TestFailure("the daemon has not logged its address:\n\(text.suffix(3000))")
                }
                return port
            }
        }

        func waitForLog(_ line: String) async throws {
            try await HealthExhaustionTests.waitUntil(
                "the daemon logs \"\(line)\"\n\(text.suffix(3000))", timeout: .seconds(60)
            ) {
                guard process.isRunning else { throw TestFailure("the daemon exited:\n\(text.suffix(3000))") }
                return text.contains(line)
            }
        }

        /// CPU time the daemon has used, user and system, in seconds (/proc/PID/stat fields 14 and 15).
        func cpuSeconds() throws -> Double {
            let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
            // The command name may hold spaces; the fields after its closing parenthesis do not.
            let fields = stat[stat.range(of: ")", options: .backwards)!.upperBound...].split(separator: " ")
            guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else {
                throw TestFailure("cannot read /proc/\(pid)/stat: \(stat)")
            }
            return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
        }

        /// Descriptors the daemon holds now.
        func descriptors() -> Int {
            ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []).count
        }

        /// Sets the running daemon's soft descriptor limit (prlimit(2) on another process; root may).
        func setSoftLimit(_ soft: Int) async throws {
            let prlimit = try ProcessRunner.which("prlimit", package: "util-linux")
            let arguments = ["--pid", "\(pid)", "--nofile=\(soft):\(HealthExhaustionTests.limit)"]
            let set = try await runOffPool { try ProcessRunner.run(prlimit, arguments) }
            guard set.status == 0 else { throw TestFailure("prlimit --pid failed: \(set)") }
        }

        func stop() { process.terminate(grace: .seconds(60)) }
    }

    /// The test's client sockets, closed once, whichever way the test ends.
    final class Sockets: Sendable {
        private let descriptors = Mutex<[Int32]>([])
        var all: [Int32] { descriptors.withLock { $0 } }

        /// Opens `count` connections to 127.0.0.1:`port`, off the cooperative pool; `each` runs after each.
        func open(_ count: Int, port: Int, each: @escaping @Sendable () -> Void = {}) async throws {
            try await runOffPool {
                for _ in 0..<count {
                    let socket = try LoopbackTCP.connect(port: port)
                    self.descriptors.withLock { $0.append(socket) }
                    each()
                }
            }
        }

        func closeAll() {
            descriptors.withLock {
                $0.forEach { close($0) }; $0 = []
            }
        }
    }

    static func healthz(_ port: Int, timeoutSeconds: Int = 10) async throws -> HTTPGet.Answer {
        try await runOffPool { try HTTPGet.get(port: port, path: "/healthz", timeoutSeconds: timeoutSeconds) }
    }

    /// Polls `condition` every 20 ms until it holds; fails with `what` when `timeout` passes.
    static func waitUntil(
        _ what: @autoclosure () -> String, timeout: Duration, _ condition: () throws -> Bool
    ) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while try !condition() {
            guard clock.now < deadline else { throw TestFailure("not within \(timeout): \(what())") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// True once the server has closed its end of `socket`: it reads end of file (or a reset), without waiting.
    static func closedByServer(_ socket: Int32) -> Bool {
        var byte: UInt8 = 0
        let count = recv(socket, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
        return count == 0 || (count < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
    }

    @Test("Idle connections past the cap and past the descriptor limit: /healthz answers, no busy loop")
    func idleFlood() async throws {
        let lab = try await runOffPool { try DaemonTests.Lite() }  // starts coturn and waits for it
        defer { lab.stop() }
        let daemon = try LimitedDaemon(lab)
        defer { daemon.stop() }
        // After the first rotation the daemon holds what it holds at rest.
        try await daemon.waitForLog("step 4:")

        let clock = ContinuousClock()
        let started = clock.now
        let cpuBefore = try daemon.cpuSeconds()
        let flood = Sockets()
        defer { flood.closeAll() }
        let peak = Atomic(daemon.descriptors())
        // 232 connections, against 128 descriptors: unbounded, the listener would run out.
        try await flood.open(Self.cap + 200, port: try daemon.port) { peak.max(daemon.descriptors()) }

        // While they are held, /healthz answers (within 10 s: a hang guard, generous for a loaded machine).
        for _ in 0..<3 {
            let answer = try await Self.healthz(try daemon.port, timeoutSeconds: 10)
            #expect(answer.status == 200 && answer.body == "ok\n")
            peak.max(daemon.descriptors())
        }
        let most = peak.load(ordering: .relaxed)
        #expect(most < Self.limit, "the daemon reached its descriptor limit: \(most) of \(Self.limit)")

        // The cap, not the timeout, closed the rest: well before the 5 s head timeout, the daemon holds no more
        // than the cap of them, and still holds some.
        try await Self.waitUntil("at most \(Self.cap) held", timeout: .seconds(4)) {
            flood.all.count(where: { !Self.closedByServer($0) }) <= Self.cap
        }
        #expect(flood.all.count(where: { !Self.closedByServer($0) }) > 0)
        // The head timeout closes the ones it kept.
        try await Self.waitUntil("every idle connection closed", timeout: .seconds(30)) {
            flood.all.allSatisfy(Self.closedByServer)
        }
        let wall = clock.now - started
        let cpu = try daemon.cpuSeconds() - cpuBefore
        let seconds = Double(wall.components.seconds) + Double(wall.components.attoseconds) / 1e18
        // A listener spinning on failed accepts burns a whole core: 100% of the wall time.
        #expect(cpu < 0.3 * seconds, "the daemon used \(cpu) s of CPU in \(seconds) s")
        #expect(try await Self.healthz(try daemon.port).status == 200)
        #expect(daemon.process.isRunning)
    }

    @Test("Descriptors run out anyway: accept pauses instead of spinning, and /healthz answers once they free")
    func descriptorsExhausted() async throws {
        let lab = try await runOffPool { try DaemonTests.Lite() }  // starts coturn and waits for it
        defer { lab.stop() }
        let daemon = try LimitedDaemon(lab)
        defer { daemon.stop() }
        try await daemon.waitForLog("step 4:")

        // Eight descriptors to spare, fewer than the cap: accept itself fails with EMFILE.
        let headroom = daemon.descriptors() + 8
        try await daemon.setSoftLimit(headroom)
        let flood = Sockets()
        defer { flood.closeAll() }
        try await flood.open(100, port: try daemon.port)
        try await Self.waitUntil("the daemon runs out of descriptors", timeout: .seconds(10)) {
            daemon.descriptors() >= headroom
        }

        // Hold until the head timeout frees the first of them: all that while, connections wait in the kernel's
        // queue and every accept fails.
        let clock = ContinuousClock()
        let started = clock.now
        let cpuBefore = try daemon.cpuSeconds()
        try await Self.waitUntil("an idle connection closed by the head timeout", timeout: .seconds(30)) {
            flood.all.contains(where: Self.closedByServer)
        }
        let wall = clock.now - started
        let cpu = try daemon.cpuSeconds() - cpuBefore
        let seconds = Double(wall.components.seconds) + Double(wall.components.attoseconds) / 1e18
        #expect(seconds > 1, "the hold was too short to tell: \(seconds) s")
        #expect(cpu < 0.3 * seconds, "the daemon used \(cpu) s of CPU in \(seconds) s with accept failing")

        flood.closeAll()
        try await daemon.setSoftLimit(Self.limit)
        #expect(try await Self.healthz(try daemon.port).status == 200)
        #expect(daemon.process.isRunning)
    }
}

extension Atomic where Value == Int {
    /// Raises the value to `candidate` if that is larger.
    func max(_ candidate: Int) {
        var current = load(ordering: .relaxed)
        while candidate > current {
            let (exchanged, original) = compareExchange(
                expected: current, desired: candidate, ordering: .relaxed)
            if exchanged { return }
            current = original
        }
    }
}
