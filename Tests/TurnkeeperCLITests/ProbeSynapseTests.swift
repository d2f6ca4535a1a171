import Foundation
import TestSupport
import Testing
import TurnkeeperCredentials
import TurnkeeperProbe
import TurnkeeperSynapse

/// `turnkeeper probe` taking its targets and credentials from Synapse: its config, and its live
/// /voip/turnServer endpoint, with a real Synapse from PyPI and a real coturn.
@Suite("turnkeeper probe with Synapse", .mayBlock, .tags(.live))
struct ProbeSynapseTests {
    private func secretText() throws -> String {
        try TurnSecret.generate().withExposedBytes { String(decoding: $0, as: UTF8.self) }
    }

    private func probe(_ arguments: [String]) throws -> (ProcessOutput, ProbeReport?) {
        // Tests that expect success get room for a loaded machine; tests of timeouts set their own.
        let timeout = arguments.contains("--timeout") ? [] : ["--timeout", "10s"]
        let output = try TurnkeeperBinary.run(["probe", "--json"] + arguments + timeout)
        return (output, try? JSONDecoder().decode(ProbeReport.self, from: Data(output.stdout.utf8)))
    }

    @Test("--synapse-config: turn_uris, the secret and the lifetime come from homeserver.yaml and conf.d")
    func fromConfig() throws {
        let secret = try secretText()
        let server = try CoturnServer(secrets: [secret])
        defer { server.stop() }
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try FileManager.default.createDirectory(atPath: directory.file("conf.d"), withIntermediateDirectories: false)
        try directory.write("homeserver.yaml", "server_name: test.local\nturn_shared_secret: staleOldSecret\n")
        let secretFile = try directory.write("turn-secret", secret + "\n", mode: 0o640)
        try directory.write(
            "conf.d/90-turnkeeper.yaml",
            """
            turn_uris: ["turn:127.0.0.1:\(server.port)?transport=udp", "turn:127.0.0.1:\(server.port)?transport=tcp"]
            turn_shared_secret: null
            turn_shared_secret_path: \(secretFile)
            turn_user_lifetime: 30m
            """
        )
        let (output, report) = try probe([
            "--synapse-config", directory.file("homeserver.yaml"), "--synapse-config", directory.file("conf.d"),
        ])
        #expect(output.status == 0, "\(output)")
        #expect(report?.targets.count == 2)
        #expect(report?.passed == true)

        // The same layout with the stale inline secret left in force is named as a mismatch.
        try directory.write(
            "conf.d/90-turnkeeper.yaml", "turn_uris: [\"turn:127.0.0.1:\(server.port)?transport=udp\"]\n")
        let (stale, staleReport) = try probe([
            "--synapse-config", directory.file("homeserver.yaml"), "--synapse-config", directory.file("conf.d"),
        ])
        #expect(stale.status == 1)
        #expect(staleReport?.diagnoses.map(\.code.rawValue) == ["credentials-rejected"])
    }

    @Test("--homeserver: probes exactly what Synapse's /voip/turnServer hands out, and names a secret mismatch")
    func fromHomeserver() throws {
        let secret = try secretText()
        let server = try CoturnServer(secrets: [secret])
        defer { server.stop() }
        // 10-a sorts before 9-b, so Synapse takes 9-b's secret: the right one.
        let synapse = try SynapseServer(confFiles: [
            "10-a.yaml": "turn_shared_secret: \"wrongWrongWrong\"\n",
            "9-b.yaml": """
            turn_uris: ["turn:127.0.0.1:\(server.port)?transport=udp", "turn:127.0.0.1:\(server.port)?transport=tcp"]
            turn_shared_secret: "\(secret)"
            turn_user_lifetime: 10m
            """,
        ])
        defer { synapse.stop() }
        let token = try synapse.register("alice")
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let tokenFile = try directory.write("token", token + "\n")

        // turnkeeper's reader agrees with Synapse on which file wins.
        let config = try SynapseConfig.load([synapse.homeserverYAML, synapse.confD])
        #expect(config.turnSecret == (try TurnSecret(validating: secret)))

        let (output, report) = try probe(["--homeserver", synapse.baseURL, "--access-token-file", tokenFile])
        #expect(output.status == 0, "\(output)")
        #expect(report?.passed == true)
        #expect(
            report?.targets.map(\.uri) == [
                "turn:127.0.0.1:\(server.port)?transport=udp", "turn:127.0.0.1:\(server.port)?transport=tcp",
            ])
        #expect(!output.stdout.contains(token) && !output.stderr.contains(token))

        let (badToken, _) = try probe([
            "--homeserver", synapse.baseURL, "--access-token-file", try directory.write("bad", "nope\n"),
        ])
        #expect(badToken.status == 1)
        #expect(badToken.stderr.contains("M_UNKNOWN_TOKEN"))
    }

    @Test(
        "--homeserver: a Synapse whose secret differs from coturn's is named as a mismatch; no TURN config is named too"
    )
    func mismatchAndEmpty() throws {
        let server = try CoturnServer(secrets: [try secretText()])
        defer { server.stop() }
        let synapse = try SynapseServer(confFiles: [
            "90-turn.yaml": """
            turn_uris: ["turn:127.0.0.1:\(server.port)?transport=udp"]
            turn_shared_secret: "\(try secretText())"
            """
        ])
        defer { synapse.stop() }
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let tokenFile = try directory.write("token", try synapse.register("bob") + "\n")
        let (output, report) = try probe(["--homeserver", synapse.baseURL, "--access-token-file", tokenFile])
        #expect(output.status == 1)
        #expect(report?.diagnoses.map(\.code.rawValue) == ["credentials-rejected"])

        let bare = try SynapseServer(confFiles: [:])
        defer { bare.stop() }
        let bareToken = try directory.write("bare-token", try bare.register("carol") + "\n")
        let (empty, _) = try probe(["--homeserver", bare.baseURL, "--access-token-file", bareToken])
        #expect(empty.status == 1)
        #expect(empty.stderr.contains("hands out no TURN credentials"))
    }
}
