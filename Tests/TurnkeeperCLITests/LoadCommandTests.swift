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

    static func load(_ arguments: [String]) throws -> Run {
        // Timing limits out of reach: what a loaded machine does to jitter, transit and setup is not under test.
        let output = try TurnkeeperBinary.run(
            ["load", "--json", "--max-jitter", "100000", "--max-transit", "100000", "--max-setup", "100000"]
                + arguments, timeout: .seconds(180))
        let report = (try? JSONSerialization.jsonObject(with: Data(output.stdout.utf8))) as? [String: Any] ?? [:]
        return Run(output: output, report: report)
    }

    @Test("Three voice calls over UDP and TCP: all up, every packet through, no limit, exit 0")
    func smallLoad() throws {
        let directory = try TemporaryDirectory("turnkeeper-load")
        defer { directory.remove() }
        let secret = try TurnSecret.generate().withExposedBytes { String(decoding: $0, as: UTF8.self) }
        let coturn = try CoturnServer(secrets: [secret])
        defer { coturn.stop() }
        let secretFile = try directory.write("secret", secret + "\n")
        for transport in ["udp", "tcp"] {
            let run = try Self.load([
                "turn:127.0.0.1:\(coturn.port)?transport=\(transport)", "--secret-file", secretFile, "--calls", "3",
                "--duration", "2s", "--coturn-pid", String(coturn.pid),
            ])
            #expect(run.output.status == 0, "\(run.output)")
            let step = try #require(run.steps.first)
            #expect(step["callsUp"] as? Int == 3 && step["lossPercent"] as? Double == 0, "\(transport): \(step)")
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
    }

    @Test("A narrow relay port range: the ramp stops at the step that needs more ports, and names min-port..max-port")
    func relayPorts() throws {
        let directory = try TemporaryDirectory("turnkeeper-load")
        defer { directory.remove() }
        let secret = try TurnSecret.generate().withExposedBytes { String(decoding: $0, as: UTF8.self) }
        // The test coturn has 64 relay ports: 32 calls.
        let coturn = try CoturnServer(secrets: [secret])
        defer { coturn.stop() }
        let secretFile = try directory.write("secret", secret + "\n")
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
}
