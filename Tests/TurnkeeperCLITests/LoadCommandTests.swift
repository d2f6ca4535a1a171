import Foundation
import TestSupport
import Testing
import TurnkeeperCredentials

/// `turnkeeper load` against real coturn on loopback: calls come up and lose nothing at a small count, and
/// each limit stops the ramp at the right step with the coturn option that governs it.
@Suite("turnkeeper load", .mayBlock, .tags(.live))
struct LoadCommandTests {
    struct Run {
        let output: ProcessOutput
        let report: [String: Any]
        var steps: [[String: Any]] { report["steps"] as? [[String: Any]] ?? [] }
        var limit: String { report["limit"] as? String ?? "" }
    }

    /// A new secret in a private directory's file, and coturns that accept it.
    struct Secret {
        let directory: TemporaryDirectory
        let text: String
        let file: String

        init() throws {
            directory = try TemporaryDirectory("turnkeeper-load")
            text = try TurnSecret.generate().withExposedBytes { String(decoding: $0, as: UTF8.self) }
            file = try directory.write("secret", text + "\n")
        }

        func coturn(_ extraLines: [String] = []) throws -> CoturnServer {
            try CoturnServer(secrets: [text], extraLines: extraLines)
        }

        func remove() { directory.remove() }
    }

    static func load(_ arguments: [String]) throws -> Run {
        // Timing limits out of reach: what a loaded machine does to jitter, transit and setup is not under test.
        let output = try TurnkeeperBinary.run(
            [
                "load", "--json", "--max-jitter", "100000", "--max-transit", "100000", "--max-setup", "100000",
                "--max-late", "100",
            ]
                + arguments, timeout: .seconds(180))
        let report = (try? JSONSerialization.jsonObject(with: Data(output.stdout.utf8))) as? [String: Any] ?? [:]
        return Run(output: output, report: report)
    }

    @Test("Three voice calls over UDP and TCP: all up, packets through, no limit, exit 0")
    func smallLoad() throws {
        let secret = try Secret()
        defer { secret.remove() }
        let coturn = try secret.coturn()
        defer { coturn.stop() }
        let secretFile = secret.file
        for transport in ["udp", "tcp"] {
            // A packet may miss its half second's grace on a loaded machine; a broken relay path loses them all.
            let run = try Self.load([
                "turn:127.0.0.1:\(coturn.port)?transport=\(transport)", "--secret-file", secretFile, "--calls", "3",
                "--duration", "2s", "--coturn-pid", String(coturn.pid), "--max-loss", "5",
            ])
            #expect(run.output.status == 0, "\(run.output)")
            let step = try #require(run.steps.first)
            #expect(step["callsUp"] as? Int == 3, "\(transport): \(step)")
            #expect((step["lossPercent"] as? Double ?? 100) <= 5, "\(transport): \(step)")
            #expect(step["packetsSent"] as? Int ?? 0 > 0 && step["refusals"] as? [String: Int] == [:], "\(step)")
            #expect(step["coturnCPUPercent"] != nil && step["coturnResidentBytes"] as? Int ?? 0 > 0)
            #expect(run.report["limit"] == nil)
        }
    }

    @Test("user-quota: one shared credential's ramp stops where coturn answers 486, and says user-quota")
    func userQuota() throws {
        let directory = try TemporaryDirectory("turnkeeper-load")
        defer { directory.remove() }
        let secret = try TurnSecret.generate()
        let text = secret.withExposedBytes { String(decoding: $0, as: UTF8.self) }
        let coturn = try CoturnServer(secrets: [text], extraLines: ["user-quota=4"])
        defer { coturn.stop() }
        let credential = try CredentialMinter(secret: secret).credential(
            user: "@shared:localhost", lifetime: .hours(1), nowMilliseconds: Int64(Date().timeIntervalSince1970 * 1000))
        let passwordFile = try directory.write("password", credential.password + "\n")
        let run = try Self.load([
            "turn:127.0.0.1:\(coturn.port)?transport=udp", "--username", credential.username, "--password-file",
            passwordFile, "--ramp", "1,2,3", "--duration", "1s",
        ])
        #expect(run.output.status == 1, "\(run.output)")
        #expect(run.steps.count == 3 && run.steps[1]["callsUp"] as? Int == 2, "\(run.report)")
        #expect(run.report["limitCheck"] as? String == "allocation-quota", "\(run.report)")
        #expect(run.limit.contains("At 3 calls") && run.limit.contains("user-quota"), "\(run.limit)")
        // Minted from Synapse's config, each call is its own user: the same ramp is carried.
        let homeserver = try directory.write("homeserver.yaml", "turn_shared_secret: \"\(text)\"\n")
        let perUser = try Self.load([
            "turn:127.0.0.1:\(coturn.port)?transport=udp", "--synapse-config", homeserver, "--ramp", "1,2,3",
            "--duration", "1s",
        ])
        #expect(perUser.output.status == 0, "\(perUser.output)")
        #expect(perUser.steps.count == 3 && perUser.steps.last?["callsUp"] as? Int == 3, "\(perUser.report)")
    }

    @Test(
        "Refused before anything is sent: no credentials, a stun: URI, bad steps, limits, bitrate or plot file",
        arguments: [
            (["turn:127.0.0.1:9?transport=udp", "--calls", "1"], "load needs credentials"),
            (["stun:127.0.0.1:9", "--secret-file", "/nonexistent", "--calls", "1"], "a stun: server relays nothing"),
            (["turn:127.0.0.1:9", "--secret-file", "/nonexistent", "--calls", "1", "--ramp", "1,2"], "not both"),
            (["turn:127.0.0.1:9", "--secret-file", "/nonexistent", "--calls", "1", "--bitrate", "5"], "--bitrate"),
            (["turn:127.0.0.1:9", "--secret-file", "/nonexistent", "--ramp", "4,2"], "numbers that rise"),
            (["turn:127.0.0.1:9", "--secret-file", "/nonexistent", "--ramp", "10,10"], "numbers that rise"),
            (["turn:127.0.0.1:9", "--secret-file", "/nonexistent", "--ramp", "10,abc,40"], "numbers that rise"),
            (["turn:127.0.0.1:9", "--secret-file", "/nonexistent", "--calls", "1", "--max-loss", "nan"], "0 or more"),
            (["turn:127.0.0.1:9", "--secret-file", "/nonexistent", "--calls", "1", "--plot", "/etc/passwd"], "exists"),
        ])
    func usage(arguments: [String], says: String) throws {
        let output = try TurnkeeperBinary.run(["load"] + arguments)
        #expect(output.status == 2, "\(output)")
        #expect(output.stderr.contains(says), "\(output.stderr)")
    }

    @Test("A narrow relay port range: the ramp stops at the step that needs more ports, and names min-port..max-port")
    func relayPorts() throws {
        let secret = try Secret()
        defer { secret.remove() }
        // The test coturn has 64 relay ports: 32 calls.
        let coturn = try secret.coturn()
        defer { coturn.stop() }
        let secretFile = secret.file
        let run = try Self.load([
            "turn:127.0.0.1:\(coturn.port)?transport=udp", "--secret-file", secretFile, "--ramp", "8,40",
            "--duration", "1s",
        ])
        #expect(run.output.status == 1, "\(run.output)")
        #expect(run.steps.first?["callsUp"] as? Int == 8, "\(run.report)")
        #expect(run.report["limitCheck"] as? String == "relay-capacity", "\(run.report)")
        #expect(run.limit.contains("At 40 calls") && run.limit.contains("min-port..max-port"), "\(run.limit)")
        let refusals = run.steps.last?["refusals"] as? [String: Int] ?? [:]
        #expect((refusals["508"] ?? 0) > 0, "\(run.report)")
    }

    @Test(
        "Refreshes: with coturn's lifetimes shortened, calls renewing as browsers do lose nothing; without, they drop")
    func refreshes() throws {
        let secret = try Secret()
        defer { secret.remove() }
        let coturn = try secret.coturn(["permission-lifetime=4", "channel-lifetime=5", "max-allocate-lifetime=6"])
        defer { coturn.stop() }
        let secretFile = secret.file
        let base = [
            "turn:127.0.0.1:\(coturn.port)?transport=udp", "--secret-file", secretFile, "--calls", "2", "--duration",
            "12s", "--max-loss", "5",
        ]
        // The allocation (6 s) is refreshed half-way; permissions and channels as often as these say.
        let renewed = try Self.load(base + ["--permission-refresh", "2s", "--channel-refresh", "3s"])
        #expect(renewed.output.status == 0, "\(renewed.output)")
        let step = try #require(renewed.steps.first)
        #expect(step["callsUp"] as? Int == 2 && step["refreshFailures"] as? [String: Int] == [:], "\(step)")
        #expect((step["lossPercent"] as? Double ?? 100) <= 5, "\(step)")
        // The control: permissions and channels left to expire, as a client without refreshes would.
        let lapsed = try Self.load(base)
        #expect(lapsed.output.status == 1, "\(lapsed.output)")
        #expect(lapsed.report["limitCheck"] as? String == "loss", "\(lapsed.report)")
        #expect((lapsed.steps.first?["lossPercent"] as? Double ?? 0) > 30, "\(lapsed.report)")
    }

    @Test("A client stalled as a saturated one is, then SIGTERM: late packets counted, traffic stopped, all released")
    func overloaded() async throws {
        let secret = try Secret()
        defer { secret.remove() }
        let coturn = try secret.coturn()
        defer { coturn.stop() }
        let output = secret.directory.file("load.json")
        let errors = secret.directory.file("load.err")
        // Six video calls at 2 Mbit/s each way. The overload is made exact below: the client is stopped outright,
        // which a saturated client only approaches. (A real flood would overload coturn too, on the same cores,
        // and then whether coturn answers the releases in time is the machine's speed, not the client's.)
        let process = try ChildProcess(
            TurnkeeperBinary.path,
            [
                "load", "--json", "turn:127.0.0.1:\(coturn.port)?transport=udp", "--secret-file", secret.file,
                "--calls", "6", "--profile", "video", "--bitrate", "2m", "--frame-rate", "30", "--duration", "10m",
                "--max-loss", "100", "--max-jitter", "100000", "--max-transit", "100000", "--max-setup", "100000",
            ], stdoutPath: output, stderrPath: errors)
        defer { if process.isRunning { kill(process.pid, SIGKILL) } }
        // The event: the step's window has opened (its calls came up, or were refused).
        let opened = ContinuousClock.now + .seconds(120)
        while !((try? String(contentsOfFile: errors, encoding: .utf8)) ?? "").contains("measuring for") {
            guard process.isRunning, ContinuousClock.now < opened else {
                Issue.record(
                    "the load never opened its window: \((try? String(contentsOfFile: errors, encoding: .utf8)) ?? "")")
                return
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        // The client stalls, as a saturated one does, for at least a second: far longer than a packet stays of
        // use (200 ms). A busy machine only lengthens the stall. SIGTERM arrives while it is stopped.
        kill(process.pid, SIGSTOP)
        try await Task.sleep(for: .seconds(1))
        kill(process.pid, SIGTERM)
        kill(process.pid, SIGCONT)
        // A bound against a hang, not a measure.
        let status = process.wait(timeout: .seconds(120))
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        #expect(status == 1, "\(text)\n\((try? String(contentsOfFile: errors, encoding: .utf8)) ?? "")")
        let report = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
        #expect(report["interrupted"] as? Bool == true && report["releasesUnconfirmed"] as? Int == 0, "\(text)")
        let step = try #require((report["steps"] as? [[String: Any]])?.first, "\(text)")
        #expect((step["packetsLate"] as? Int ?? 0) > 0, "\(step)")
        #expect((step["callsUp"] as? Int ?? 0) > 0, "\(step)")
    }

    @Test("437 to an Allocate: tried again once from another local port, counted as a retry; a second 437 refuses")
    func allocationMismatch() throws {
        let secret = try Secret()
        defer { secret.remove() }
        let server = try HostileServer(.allocationMismatch)
        defer { server.stop() }
        let passwordFile = try secret.directory.write("password", HostileServer.password + "\n")
        let run = try Self.load([
            "turn:127.0.0.1:\(server.port)?transport=udp", "--username", "load", "--password-file", passwordFile,
            "--calls", "3", "--duration", "1s",
        ])
        #expect(run.output.status == 1, "\(run.output)")
        let step = try #require(run.steps.first, "\(run.report)")
        #expect(step["retries"] as? [String: Int] == ["437": 3], "\(step)")
        #expect(step["refusals"] as? [String: Int] == ["437": 3], "\(step)")
        // Each call's caller allocated twice (transactions; a slow answer's retransmission is the same one), from
        // sockets of their own: the kernel picks each port afresh, so the 6 draw at least 4 different ports.
        let sources = server.allocationSources.withLock { $0 }
        #expect(Set(sources.map(\.transaction)).count == 6, "\(sources)")
        #expect(Set(sources.map(\.port)).count >= 4, "\(sources)")
    }

    @Test("Video: each frame's bytes go as a burst of equal packets, over UDP and TLS, and arrive")
    func video() throws {
        let secret = try Secret()
        defer { secret.remove() }
        let certificates = try TestCertificates(in: secret.directory)
        var options = CoturnServer.Options()
        options.tls = certificates.good
        let coturn = try CoturnServer(secrets: [secret.text], options: options)
        defer { coturn.stop() }
        let secretFile = secret.file
        for uri in ["turn:127.0.0.1:\(coturn.port)?transport=udp", "turns:localhost:\(coturn.tlsPort!)?transport=tcp"] {
            // 400 kbit/s at 25 frames/s: 2,000 bytes a frame, two packets of 1,000.
            let run = try Self.load([
                uri, "--secret-file", secretFile, "--ca-file", certificates.caFile, "--calls", "2", "--duration", "2s",
                "--profile", "video", "--bitrate", "400k", "--frame-rate", "25", "--max-loss", "5",
            ])
            #expect(run.output.status == 0, "\(uri): \(run.output)")
            #expect((run.report["profile"] as? String ?? "").contains("2 packet(s) of 1000 bytes"), "\(run.report)")
            let step = try #require(run.steps.first)
            #expect(step["callsUp"] as? Int == 2, "\(uri): \(step)")
            #expect((step["lossPercent"] as? Double ?? 100) <= 5, "\(uri): \(step)")
            let packets = step["packetsPerSecond"] as? Double ?? 0
            let bytes = step["bytesPerSecond"] as? Double ?? 0
            #expect(packets > 0 && abs(bytes / packets - 1000) < 10, "\(step)")
        }
    }

    @Test("Bandwidth caps: max-bps shows as loss naming it; bps-capacity refuses allocations with 486, named")
    func bandwidthCaps() throws {
        let secret = try Secret()
        defer { secret.remove() }
        let secretFile = secret.file
        // Voice is 8,200 bytes a second each way at the relay; 4,000 allowed drops about half.
        let capped = try secret.coturn(["max-bps=4000"])
        let loss = try Self.load([
            "turn:127.0.0.1:\(capped.port)?transport=udp", "--secret-file", secretFile, "--calls", "2",
            "--duration", "3s",
        ])
        capped.stop()
        #expect(loss.output.status == 1, "\(loss.output)")
        #expect(loss.report["limitCheck"] as? String == "loss" && loss.limit.contains("max-bps"), "\(loss.report)")
        #expect((loss.steps.first?["lossPercent"] as? Double ?? 0) > 20, "\(loss.report)")
        // 10,000 bytes a second of capacity at 4,000 a session: two sessions, one call.
        let full = try secret.coturn(["max-bps=4000", "bps-capacity=10000"])
        defer { full.stop() }
        let refused = try Self.load([
            "turn:127.0.0.1:\(full.port)?transport=udp", "--secret-file", secretFile, "--ramp", "1,2", "--duration",
            "1s", "--max-loss", "100",
        ])
        #expect(refused.output.status == 1, "\(refused.output)")
        #expect(refused.steps.first?["callsUp"] as? Int == 1, "\(refused.report)")
        #expect(refused.report["limitCheck"] as? String == "allocation-quota", "\(refused.report)")
        #expect(refused.limit.contains("At 2 calls") && refused.limit.contains("bps-capacity"), "\(refused.limit)")
    }

    /// A load on each coturn while turnkeeper rotates, with Synapse's restart held mid-rotation: every coturn has
    /// the new secret beside the old then, and a second, short load must set up all its calls. The long loads run
    /// for 10 minutes and are stopped with Ctrl-C once the rotation has ended, so they span it whatever the
    /// machine's speed; their calls must all have stayed up, with no refusal, failed refresh or dropped call.
    /// Timing limits are out of reach: what a loaded machine does to timing is not under test.
    static func rotateUnderLoad(
        _ base: TurnkeeperDeployment, coturns: [CoturnServer], signingWith secret: TurnSecret
    ) async throws {
        let secretFile = try base.directory.write(
            "load-secret", secret.withExposedBytes { String(decoding: $0, as: UTF8.self) } + "\n")
        let limits = [
            "--max-jitter", "100000", "--max-transit", "100000", "--max-setup", "100000", "--max-loss", "50",
            "--max-late", "100",
        ]
        var loads: [(process: ChildProcess, output: String)] = []
        defer { for load in loads where load.process.isRunning { kill(load.process.pid, SIGKILL) } }
        for (index, coturn) in coturns.enumerated() {
            let output = base.directory.file("load-\(index).json")
            let process = try ChildProcess(
                TurnkeeperBinary.path,
                ["load", "--json", "turn:127.0.0.1:\(coturn.port)?transport=udp", "--secret-file", secretFile]
                    + ["--calls", "6", "--duration", "10m"] + limits,
                stdoutPath: output, stderrPath: base.directory.file("load-\(index).err"))
            loads.append((process, output))
        }
        try base.hold()
        let held = base.heldRestarts.count
        let rotateOutput = base.directory.file("rotate.out")
        let rotation = try ChildProcess(
            TurnkeeperBinary.path, ["rotate", "--config", base.config], stdoutPath: rotateOutput,
            stderrPath: rotateOutput)
        do {
            try await base.waitForHeldRestarts(held + 1, of: rotation)
        } catch {
            base.release()
            throw error
        }
        // Mid-rotation: new allocations on every coturn.
        for coturn in coturns {
            let during = try TurnkeeperBinary.run(
                ["load", "--json", "turn:127.0.0.1:\(coturn.port)?transport=udp", "--secret-file", secretFile]
                    + ["--calls", "4", "--duration", "1s"] + limits, timeout: .seconds(120))
            #expect(during.status == 0, "a load during the rotation: \(during)")
        }
        base.release()
        let rotated = rotation.wait(timeout: .seconds(180))
        #expect(rotated == 0, "\((try? String(contentsOfFile: rotateOutput, encoding: .utf8)) ?? "")")
        #expect(loads.allSatisfy { $0.process.isRunning }, "a load ended before the rotation did")
        for load in loads {
            kill(load.process.pid, SIGINT)
            // Interrupted: exit 1, the step measured but not judged.
            let status = load.process.wait(timeout: .seconds(120))
            let text = try String(contentsOfFile: load.output, encoding: .utf8)
            #expect(status == 1, "\(text)")
            let report = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
            #expect(report["interrupted"] as? Bool == true && report["releasesUnconfirmed"] as? Int == 0, "\(text)")
            let step = try #require((report["steps"] as? [[String: Any]])?.first, "\(text)")
            #expect(step["callsUp"] as? Int == 6, "\(step)")
            #expect(step["refusals"] as? [String: Int] == [:], "\(step)")
            #expect(step["refreshFailures"] as? [String: Int] == [:], "\(step)")
            #expect(step["dropped"] as? [String: Int] == [:], "\(step)")
            #expect((step["lossPercent"] as? Double ?? 100) < 50, "\(step)")
        }
    }

    @Test("A rotation with a real Synapse, under load: no allocation refused, no call dropped")
    func rotationUnderLoad() async throws {
        let deployment = try RotationTests.deploy(lifetime: "1h")
        defer { deployment.stop() }
        // coturn learns Synapse's secret when turnkeeper adopts it; the load starts after that.
        let adopted = try deployment.rotate(["--resume"])
        #expect(adopted.status == 0 && adopted.stdout.contains("adopted Synapse's current secret"), "\(adopted)")
        // The calls sign with the secret Synapse had before the rotation: coturn keeps it until retirement.
        try await Self.rotateUnderLoad(deployment.base, coturns: [deployment.coturn], signingWith: deployment.original)
    }

    @Test(
        "A fleet's rotation under load: both coturns sharing a database refuse nothing",
        arguments: ["redis", "postgres"])
    func fleetRotationUnderLoad(store: String) async throws {
        let database = try FleetStoreTests.Database.start(store)
        var options = TurnkeeperDeployment.Options()
        options.store = database.store
        options.turnUserLifetime = "1h"
        options.recordRestarts = true
        // Removes the database too.
        let deployment = try TurnkeeperDeployment(options)
        defer { deployment.stop() }
        var secondOptions = CoturnServer.Options()
        secondOptions.userDatabaseLines = deployment.coturn.userDatabaseLines
        let second = try CoturnServer(secrets: [], options: secondOptions)
        defer { second.stop() }
        // The shared database learns Synapse's secret when turnkeeper adopts it; the loads start after that.
        let adopted = try TurnkeeperBinary.run(
            ["rotate", "--resume", "--config", deployment.config], timeout: .seconds(120))
        #expect(adopted.status == 0 && adopted.stdout.contains("adopted Synapse's current secret"), "\(adopted)")
        try await Self.rotateUnderLoad(
            deployment, coturns: [deployment.coturn, second], signingWith: deployment.original)
    }
}
