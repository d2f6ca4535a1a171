import Foundation
import TestSupport
import Testing

@Suite("turnkeeper.yaml", .mayBlock)
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
                of: "state_directory: /var/lib/turnkeeper", with: "state_directory: \(directory.file("state"))"
            )
            // This machine has no matrix-synapse group, and a group that does not exist is refused.
            .replacingOccurrences(of: "group: matrix-synapse", with: "group: nogroup")
        let config = try directory.write("turnkeeper.yaml", text)
        let output = try TurnkeeperBinary.run(["status", "--config", config])
        #expect(output.status == 0, "\(output)")
        #expect(output.stdout.contains("current secret: none"))
    }

    @Test(
        "Malformed configurations name the file and the line, exit 2, and change nothing",
        arguments: [
            ("synapse: {group: nogroup}\ncoturn: {realm: r}\n", "verify_uri is required"),
            ("synapse: {mode: sideways}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\n", "line 1"),
            ("synapse: {mode: path, group: nogroup}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\n", "secret_file"),
            ("synapse: {group: nogroup}\ncoturn: {realm: r, verify_uri: \"turn:h\", store: config}\n", "config_file"),
            ("synapse: [\ncoturn: {}\n", "line"),
            ("coturn: {realm: r, verify_uri: \"turn:h\"}\n", "synapse: section is missing"),
            (
                "synapse: {group: nogroup}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\nrotation: {interval: soon}\n",
                "line 3"
            ),
            (
                "synapse: {homeserver: \"http://h\", group: nogroup}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\n",
                "access_token_file"
            ),
            (
                "synapse: {turn_user_lifetime: 0, group: nogroup}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\n",
                "turn_user_lifetime"
            ),
            (
                "synapse: {turn_allow_guests: maybe, group: nogroup}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\n",
                "true or false"
            ),
            (
                "synapse: {group: nogroup}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\ndaemon:\n  listen: 9478\n",
                "line 4"
            ),
            (
                "synapse: {group: nogroup}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\ndaemon:\n  listen: \"[::1:9478\"\n",
                "HOST:PORT"
            ),
            (
                "synapse: {group: nogroup}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\ndaemon:\n  probe_interval: 0s\n",
                "under one second"
            ),
            (
                "synapse: {group: nogroup}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\ndaemon:\n  probe_uris: turn:x\n",
                "must be a list"
            ),
            // Typos and values that would silently change behaviour (issue 11, item 6).
            (
                "synapse: {group: nogroup}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\nrotation:\n  state_directroy: /tmp/x\n",
                "line 4: unknown key \"rotation.state_directroy\"; did you mean state_directory?"
            ),
            (
                "synapse: {group: nogroup}\ncoturn: {realm: r, verify_uri: \"turn:h\", stroe: sqlite}\n",
                "did you mean store?"
            ),
            (
                "synapse: {group: nogroup}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\nrotaton: {}\n",
                "did you mean rotation?"
            ),
            ("synapse: {group: nogroup}\ncoturn: {realm: ~, verify_uri: \"turn:h\"}\n", "realm is required"),
            (
                "synapse: {group: nogroup, restart_command: []}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\n",
                "restart_command is empty"
            ),
            (
                "synapse: {group: nogroup, restart_command: ~}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\n",
                "restart_command is null"
            ),
            (
                "synapse: {group: no-such-group-here}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\n",
                "does not exist on this host"
            ),
            ("synapse: {group: nogroup}\ncoturn: {realm: r, verify_uri: \"https://h\"}\n", "must be a TURN URI"),
            ("synapse: {group: nogroup}\ncoturn: {realm: r, verify_uri: \"stun:h\"}\n", "must be a TURN URI"),
            (
                "synapse: {group: nogroup}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\ndaemon: {retry_initial: 1h, retry_max: 1m}\n",
                "retry_max (60 s) is below daemon.retry_initial (3600 s)"
            ),
            (
                "synapse: {group: nogroup}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\ncoturn: {realm: s}\n",
                "line 3: coturn is given twice (first on line 2)"
            ),
            (
                "synapse: {group: nogroup, mode: inline, secret_file: /etc/s}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\n",
                "only read in path mode"
            ),
            (
                "role: turn\ncoturn: {realm: r, verify_uri: \"turn:h\"}\nrotation: {root_key_file: /k, epoch: 20s}\nsynapse: {turn_user_lifetime: 25s}\n",
                "turn_user_lifetime (25 s) is not shorter than rotation.epoch (20 s)"
            ),
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
