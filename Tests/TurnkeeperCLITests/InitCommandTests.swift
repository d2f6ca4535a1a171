import Foundation
import TestSupport
import Testing

@Suite("turnkeeper init", .mayBlock, .tags(.live))
struct InitCommandTests {
    let directory: TemporaryDirectory
    let arguments: [String]
    static let secret = "AdminSecret0123456789abcdefghijklmnopqrstuvwxyzAB"

    init() throws {
        directory = try TemporaryDirectory("turnkeeper-init")
        try FileManager.default.createDirectory(atPath: directory.file("conf.d"), withIntermediateDirectories: false)
        _ = try directory.write("homeserver.yaml", "turn_shared_secret: \"\(Self.secret)\"\n")
        _ = try directory.write("turnserver.conf", "realm=turn.example.org\nuse-auth-secret\n")
        arguments = [
            "init", "--config", directory.file("etc/turnkeeper.yaml"), "--synapse-config",
            directory.file("homeserver.yaml"), "--synapse-config", directory.file("conf.d"), "--turnserver-conf",
            directory.file("turnserver.conf"), "--prosody-config", directory.file("none.cfg.lua"), "--synapse-group",
            "root", "--synapse-unit", "matrix-synapse.service",
        ]
    }

    @Test("Writes a 0600 file (its directory 0700), read back before it says so; prints no secret")
    func writes() throws {
        defer { directory.remove() }
        let result = try TurnkeeperBinary.run(arguments)
        #expect(result.status == 0, "\(result)")
        let path = directory.file("etc/turnkeeper.yaml")
        #expect(permissions(of: path) == 0o600)
        #expect(permissions(of: directory.file("etc")) == 0o700)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.hasPrefix("# Written by `turnkeeper init`"))
        #expect(text.contains("store: sqlite"))
        #expect(
            !text.contains(Self.secret) && !result.stdout.contains(Self.secret) && !result.stderr.contains(Self.secret))
        #expect(result.stdout.contains("wrote      \(path) (0600)"))
    }

    @Test("Never overwrites a configuration; replaces the package's unedited example")
    func existing() throws {
        defer { directory.remove() }
        try FileManager.default.createDirectory(atPath: directory.file("etc"), withIntermediateDirectories: false)
        let path = directory.file("etc/turnkeeper.yaml")
        let example = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("docs/turnkeeper.example.yaml")
        let shipped = try String(contentsOf: example, encoding: .utf8)
        _ = try directory.write("etc/turnkeeper.yaml", shipped + "# edited\n")
        let refused = try TurnkeeperBinary.run(arguments)
        #expect(refused.status == 2, "\(refused)")
        #expect(refused.stderr.contains("never overwrites a configuration"))
        #expect(try String(contentsOfFile: path, encoding: .utf8) == shipped + "# edited\n")

        _ = try directory.write("etc/turnkeeper.yaml", shipped)
        let replaced = try TurnkeeperBinary.run(arguments)
        #expect(replaced.status == 0, "\(replaced)")
        #expect(replaced.stdout.contains("in place of the package's example"))
        #expect(try String(contentsOfFile: path, encoding: .utf8).hasPrefix("# Written by `turnkeeper init`"))
    }

    @Test("With anything undecided it writes nothing and exits 2")
    func undecided() throws {
        defer { directory.remove() }
        _ = try directory.write("turnserver.conf", "use-auth-secret\n")
        let result = try TurnkeeperBinary.run(arguments)
        #expect(result.status == 2, "\(result)")
        #expect(result.stdout.contains("undecided  coturn's realm"))
        #expect(result.stderr.contains("wrote nothing"))
        #expect(!FileManager.default.fileExists(atPath: directory.file("etc/turnkeeper.yaml")))
    }
}
