import Foundation
import TestSupport
import Testing

@Suite("turnkeeper.yaml")
struct ConfigurationTests {
    static var example: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("docs/turnkeeper.example.yaml").path
    }

    @Test("The annotated example in docs/ loads, and status on it says there was no rotation yet")
    func example() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        // Same file, but with a state directory this test owns.
        let text = try String(contentsOfFile: Self.example, encoding: .utf8)
            .replacingOccurrences(
                of: "state_directory: /var/lib/turnkeeper", with: "state_directory: \(directory.file("state"))")
        let config = try directory.write("turnkeeper.yaml", text)
        let output = try TurnkeeperBinary.run(["status", "--config", config])
        #expect(output.status == 0, "\(output)")
        #expect(output.stdout.contains("current secret: none"))
    }

    @Test(
        "Malformed configurations name the file and the line, exit 2, and change nothing",
        arguments: [
            ("synapse: {}\ncoturn: {realm: r}\n", "verify_uri is required"),
            ("synapse: {mode: sideways}\ncoturn: {realm: r, verify_uri: x}\n", "line 1"),
            ("synapse: {mode: path}\ncoturn: {realm: r, verify_uri: x}\n", "secret_file"),
            ("synapse: {}\ncoturn: {realm: r, verify_uri: x, store: config}\n", "config_file"),
            ("synapse: [\ncoturn: {}\n", "line"),
            ("coturn: {realm: r, verify_uri: x}\n", "synapse: section is missing"),
            ("synapse: {}\ncoturn: {realm: r, verify_uri: x}\nrotation: {interval: soon}\n", "line 3"),
            ("synapse: {homeserver: \"http://h\"}\ncoturn: {realm: r, verify_uri: x}\n", "access_token_file"),
            ("synapse: {turn_user_lifetime: 0}\ncoturn: {realm: r, verify_uri: x}\n", "turn_user_lifetime"),
            ("synapse: {turn_allow_guests: maybe}\ncoturn: {realm: r, verify_uri: x}\n", "true or false"),
            ("synapse: {}\ncoturn: {realm: r, verify_uri: x}\ndaemon:\n  listen: 9478\n", "line 4"),
            ("synapse: {}\ncoturn: {realm: r, verify_uri: x}\ndaemon:\n  listen: \"[::1:9478\"\n", "HOST:PORT"),
            ("synapse: {}\ncoturn: {realm: r, verify_uri: x}\ndaemon:\n  probe_interval: 0s\n", "under one second"),
            ("synapse: {}\ncoturn: {realm: r, verify_uri: x}\ndaemon:\n  probe_uris: turn:x\n", "must be a list"),
        ]
    )
    func malformed(yaml: String, expected: String) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let config = try directory.write("turnkeeper.yaml", yaml)
        for command in ["rotate", "status", "run"] {
            let output = try TurnkeeperBinary.run([command, "--config", config])
            #expect(output.status == 2, "\(command): \(output)")
            #expect(output.stderr.contains(config) && output.stderr.contains(expected), "\(command): \(output.stderr)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["turnkeeper.yaml"])
    }
}
