import Foundation
import Glibc
import TestSupport
import Testing
import TurnkeeperCredentials
import TurnkeeperSynapse

/// `turnkeeper run` as systemd runs it: a real coturn, Synapse (real, or its config directory alone),
/// a notify socket, signals, and /metrics read by prometheus_client's parser.
@Suite("turnkeeper run", .mayBlock, .tags(.live))
struct DaemonTests {
    /// coturn plus Synapse's configuration directory, with no Synapse process: its restart is /bin/true.
    struct Lite: Sendable {
        let base: TurnkeeperDeployment
        var coturn: CoturnServer { base.coturn }
        var directory: TemporaryDirectory { base.directory }
        var config: String { base.config }
        var original: TurnSecret { base.original }
        var managedFile: String { base.managedFile }

        /// `configStore`: coturn's secrets in turnserver.conf, its restart held while the test holds restarts.
        init(probeInterval: String = "30s", configStore: Bool = false, auditInterval: String? = nil) throws {
            var options = TurnkeeperDeployment.Options()
            options.daemon = true
            options.probeInterval = probeInterval
            options.auditInterval = auditInterval
            options.interval = "1h"
            if configStore {
                options.store = .config
                options.holdableCoturnRestart = true
                // The restart may be held as long as the test needs (the hold itself ends after 10 minutes).
                options.coturnRestartTimeout = "10m"
            }
            base = try TurnkeeperDeployment(options)
        }

        func start(_ environment: [String: String] = [:]) throws -> DaemonProcess {
            try DaemonProcess(config: config, in: directory, environment: environment)
        }

        /// The secret in turnkeeper's conf.d file.
        func managedSecret() throws -> TurnSecret {
            let text = try String(contentsOfFile: managedFile, encoding: .utf8)
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("turn_shared_secret:") }) else {
                throw TestFailure("no turn_shared_secret in \(managedFile)")
            }
            let value = line.dropFirst("turn_shared_secret:".count).trimmingCharacters(in: .whitespaces)
                .trimmingCharacters(in: CharacterSet(charactersIn: "\"'"))
            return try TurnSecret(adopting: value, source: managedFile)
        }

        func accepts(_ secret: TurnSecret) async throws -> Bool { try await base.accepts(secret) }

        func status() throws -> [String: Any] { try base.status() }

        func metrics(_ daemon: DaemonProcess) throws -> [PrometheusText.Family] {
            let answer = try daemon.get("/metrics")
            guard answer.status == 200 else { throw TestFailure("/metrics answered \(answer.status)") }
            return try PrometheusText.parse(answer.body)
        }

        func stop() { base.stop() }
    }

    @Test("systemd's protocol: READY, STATUS, WATCHDOG at half of WATCHDOG_USEC, then STOPPING on SIGTERM")
    func notifyProtocol() async throws {
        let lab = try Lite()
        defer { lab.stop() }
        let socket = try NotifySocket(in: lab.directory)
        defer { socket.close() }
        let daemon = try lab.start(["NOTIFY_SOCKET": socket.path, "WATCHDOG_USEC": "1000000"])
        defer { daemon.stop() }

        try await socket.wait(for: "READY", "1", timeout: .seconds(60))
        try await socket.wait(for: "WATCHDOG", "1", count: 6, timeout: .seconds(30))
        // The first rotation runs at start (the secret was set by hand); STATUS tells when the next is due.
        try await daemon.waitForLog("step 4:", timeout: .seconds(60))
        try await socket.wait(for: "STATUS", timeout: .seconds(10))
        daemon.signal(SIGTERM)
        #expect(daemon.process.wait(timeout: .seconds(60)) == 0, "\(daemon.log.suffix(3000))")

        let messages = socket.messages
        let ready = try #require(messages.firstIndex { $0.fields["READY"] == "1" })
        let firstPing = try #require(messages.firstIndex { $0.fields["WATCHDOG"] == "1" })
        let stopping = try #require(messages.firstIndex { $0.fields["STOPPING"] == "1" })
        #expect(ready < firstPing && firstPing < stopping)
        #expect(messages[stopping...].dropFirst().allSatisfy { $0.fields.keys.allSatisfy { $0 == "STATUS" } })
        let statuses = messages.compactMap { $0.fields["STATUS"] }
        #expect(statuses.contains { $0.contains("next rotation step") && $0.contains("secret age") }, "\(statuses)")
        // Pings at about half of the 1 s interval systemd asked for: the median gap, so one late wake-up on a
        // loaded machine cannot decide it.
        let pings = messages.filter { $0.fields["WATCHDOG"] == "1" }.map(\.at)
        let gaps = zip(pings.dropFirst(), pings).map { $0 - $1 }.sorted()
        let median = gaps[gaps.count / 2]
        #expect(median > .milliseconds(350) && median < .milliseconds(800), "watchdog gaps: \(gaps)")
        // Plain lines (no JOURNAL_STREAM): a time and a level in words, never a priority prefix.
        #expect(daemon.log.split(separator: "\n").allSatisfy { !$0.hasPrefix("<") })
    }

    @Test("On its schedule, the daemon audits coturn: findings in the journal and in turnkeeper_audit_findings")
    func scheduledAudit() async throws {
        // The test coturn allows loopback peers (its peers are on loopback): the audit's critical finding.
        let lab = try Lite(auditInterval: "3s")
        defer { lab.stop() }
        let daemon = try lab.start()
        defer { daemon.stop() }
        try await daemon.waitForLog("audit: [critical] peer-loopback", timeout: .seconds(120))
        #expect(daemon.log.contains("Fix: Remove allow-loopback-peers"), "\(daemon.log.suffix(3000))")
        let metrics = try lab.metrics(daemon)
        let loopback = metrics.value("turnkeeper_audit_findings", ["check": "peer-loopback", "severity": "critical"])
        #expect((loopback ?? 0) >= 1, "\(metrics.samples("turnkeeper_audit_findings"))")
        #expect(metrics.value("turnkeeper_last_audit_timestamp_seconds") != nil)
    }

    @Test("SIGTERM between two rotation steps stops there; the next start finishes the rotation, nothing refused")
    func sigtermMidRotation() async throws {
        // coturn's restart in step 2 is held, so the signal lands while step 2 is in flight.
        let lab = try Lite(configStore: true)
        defer { lab.stop() }
        try lab.base.hold()
        defer { lab.base.release() }
        let first = try lab.start()
        defer { first.stop() }
        try await lab.base.waitForHeldRestarts(1, of: first.process)
        first.signal(SIGTERM)
        // The shutdown has begun before the step may go on: the rotation service is told right after this line,
        // while step 2 still restarts coturn and proves the new file with allocations.
        try await first.waitForLog("shutting down", timeout: .seconds(60))
        lab.base.release()
        #expect(first.process.wait(timeout: .seconds(120)) == 0, "\(first.log.suffix(3000))")
        #expect(first.log.contains("stopping after step 2"), "\(first.log.suffix(3000))")
        #expect(try lab.status()["phase"] as? String == "verifying")
        // Mid-way, coturn accepts the secret Synapse still uses.
        #expect(try await lab.accepts(lab.original))

        let second = try lab.start()
        defer { second.stop() }
        try await second.waitForLog("step 4:", timeout: .seconds(60))
        #expect(second.log.contains("resuming the rotation left in phase verifying"))
        #expect(try lab.status()["phase"] as? String == "idle")
        let switched = try lab.managedSecret()
        #expect(switched != lab.original)
        #expect(try await lab.accepts(switched), "the new secret Synapse uses is refused")
        #expect(try await lab.accepts(lab.original), "credentials issued before the rotation are refused too early")
        // Exactly one rotation: the resumed one, not a second fresh one.
        #expect(second.occurrences(of: "step 1:") == 0)
    }

    @Test("A SIGHUP as soon as the daemon traps it, before it is ready, is neither fatal nor lost")
    func earlySighup() async throws {
        let lab = try Lite()
        defer { lab.stop() }
        let daemon = try lab.start()
        defer { daemon.stop() }
        // The moment SIGHUP is caught (its default action would kill), signal it: the configuration and state
        // may still be loading. (On a loaded machine it may come after the start instead: then this is the
        // ordinary path, which must hold too.)
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(60)
        while !Self.handlesHangup(daemon.process.pid) {
            guard clock.now < deadline, daemon.process.isRunning else {
                Issue.record("SIGHUP never trapped:\n\(daemon.log)")
                return
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        daemon.signal(SIGHUP)
        try await daemon.waitForLog("ready:", timeout: .seconds(60))
        // Kept in the sequence until the reload service ran, then reloaded for.
        try await daemon.waitForLog("SIGHUP: reloaded", timeout: .seconds(30))
        #expect(daemon.process.isRunning)
    }

    /// SIGHUP (signal 1, bit 0) in the process's set of caught signals, from /proc.
    static func handlesHangup(_ pid: Int32) -> Bool {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return false }
        return status.split(separator: "\n").contains { line in
            let fields = line.split(separator: ":", maxSplits: 1)
            guard fields.count == 2, fields[0] == "SigCgt",
                let mask = UInt64(fields[1].trimmingCharacters(in: .whitespaces), radix: 16)
            else { return false }
            return mask & 1 != 0
        }
    }

    @Test("SIGHUP with a broken configuration keeps the running one and says why; a good one is applied")
    func sighup() async throws {
        let lab = try Lite()
        defer { lab.stop() }
        let daemon = try lab.start()
        defer { daemon.stop() }
        try await daemon.waitForLog("ready:", timeout: .seconds(60))
        let good = try String(contentsOfFile: lab.config, encoding: .utf8)

        _ = try lab.directory.write("turnkeeper.yaml", good + "\ndaemon: [this is not\n")
        daemon.signal(SIGHUP)
        try await daemon.waitForLog("kept the running configuration", timeout: .seconds(30))
        let line = try #require(
            daemon.log.split(separator: "\n").first { $0.contains("kept the running configuration") })
        #expect(line.contains(lab.config) && line.contains("line"), "\(line)")
        #expect(daemon.process.isRunning)
        #expect(try daemon.get("/healthz").status == 200)
        #expect(try lab.metrics(daemon).value("turnkeeper_config_reloads_total", ["result": "failed"]) == 1)

        _ = try lab.directory.write(
            "turnkeeper.yaml", good.replacingOccurrences(of: "probe_interval: 30s", with: "probe_interval: 1s"))
        daemon.signal(SIGHUP)
        try await daemon.waitForLog("SIGHUP: reloaded", timeout: .seconds(30))
        #expect(try lab.metrics(daemon).value("turnkeeper_config_reloads_total", ["result": "ok"]) == 1)
        // The new probe interval is in force: probes now run every second.
        let before = try #require(try lab.metrics(daemon).value("turnkeeper_last_probe_timestamp_seconds"))
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(20)
        var after = before
        while after <= before + 1 && clock.now < deadline {
            try await Task.sleep(for: .milliseconds(200))
            after = try lab.metrics(daemon).value("turnkeeper_last_probe_timestamp_seconds") ?? before
        }
        #expect(after > before + 1, "no probe after the reload to a 1 s interval")
    }

    @Test("A port already in use, or a broken configuration, stops the start with exit 2 and a reason")
    func startupErrors() throws {
        let lab = try Lite()
        defer { lab.stop() }
        // Held from the moment it is chosen, so no other process can take it meanwhile.
        let port = Int(try LoopbackUDP.freePort())
        let blocker = try LoopbackTCP.listen(port: port)
        defer { close(blocker) }
        try lab.base.writeConfig { $0.daemon?.listen = "127.0.0.1:\(port)" }
        let busy = try TurnkeeperBinary.run(["run", "--config", lab.config], timeout: .seconds(60))
        #expect(busy.status == 2, "\(busy)")
        #expect(busy.stderr.contains("cannot listen on 127.0.0.1:\(port)") && busy.stderr.contains("daemon.listen"))

        _ = try lab.directory.write("turnkeeper.yaml", "synapse: {group: nogroup}\ncoturn: {realm: r}\n")
        let broken = try TurnkeeperBinary.run(["run", "--config", lab.config], timeout: .seconds(60))
        #expect(broken.status == 2, "\(broken)")
        #expect(broken.stderr.contains(lab.config) && broken.stderr.contains("verify_uri is required"))
    }
}
