import Foundation
import TestSupport
import Testing

@Suite("turnkeeper.yaml", .mayBlock, .tags(.live))
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

    @Test("A malformed configuration stops every command that reads it: exit 2, file and line, nothing changed")
    func malformed() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let config = try directory.write(
            "turnkeeper.yaml",
            "synapse: {group: nogroup}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\nrotation:\n  state_directroy: /tmp/x\n"
        )
        let expected = "line 4: unknown key \"rotation.state_directroy\"; did you mean state_directory?"
        for command in ["rotate", "status", "check", "run"] {
            let output = try TurnkeeperBinary.run([command, "--config", config])
            #expect(output.status == 2, "\(command): \(output)")
            #expect(output.stderr.contains(config) && output.stderr.contains(expected), "\(command): \(output.stderr)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["turnkeeper.yaml"])
    }
}
