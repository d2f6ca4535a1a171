import Foundation
import TestSupport
import Testing
import TurnkeeperCore
import TurnkeeperCredentials
import TurnkeeperSynapse

@Suite("Synapse's config, read with Synapse's rules", .mayBlock)
struct SynapseConfigTests {
    let directory: TemporaryDirectory
    init() throws {
        directory = try TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: directory.file("conf.d"), withIntermediateDirectories: false)
    }

    private func load() throws -> SynapseConfig {
        try SynapseConfig.load([directory.file("homeserver.yaml"), directory.file("conf.d")])
    }

    @Test("conf.d: only *.yaml, hidden ones too, in full-path string order, merged shallowly")
    func orderAndMerge() throws {
        defer { directory.remove() }
        try directory.write(
            "homeserver.yaml", "server_name: x\nturn_uris: [\"turn:a\"]\nturn_shared_secret: fromHomeserver\n")
        // "10-a.yaml" sorts before "9-b.yaml", so 9-b is read last and wins.
        try directory.write("conf.d/9-b.yaml", "turn_shared_secret: fromNine\n")
        try directory.write("conf.d/10-a.yaml", "turn_shared_secret: fromTen\nturn_uris: [\"turn:b\", \"turn:c\"]\n")
        try directory.write("conf.d/.hidden.yaml", "turn_user_lifetime: 30m\n")
        try directory.write("conf.d/ignored.yml", "turn_shared_secret: fromYml\n")
        try directory.write("conf.d/ignored.yaml.bak", "turn_shared_secret: fromBak\n")
        let config = try load()
        #expect(
            config.files.map { ($0 as NSString).lastPathComponent } == [
                "homeserver.yaml", ".hidden.yaml", "10-a.yaml", "9-b.yaml",
            ])
        #expect(config.turnSecret == (try TurnSecret(validating: "fromNine")))
        #expect(config.turnURIs == ["turn:b", "turn:c"])
        #expect(config.turnUserLifetime.milliseconds == 1_800_000)
        #expect(config.origins["turn_shared_secret"] == directory.file("conf.d/9-b.yaml"))
    }

    @Test("A later file cancels the inline secret with null and points at a secret file, stripped of whitespace")
    func secretPath() throws {
        defer { directory.remove() }
        // 0640, as Synapse's group reads it; a file only root may read is not one Synapse reads.
        let secretFile = try directory.write("secret", "  fromFile \n\n", mode: 0o640)
        try directory.write("homeserver.yaml", "turn_shared_secret: inline\nturn_uris: [\"turn:a\"]\n")
        try directory.write(
            "conf.d/90-turnkeeper.yaml", "turn_shared_secret: null\nturn_shared_secret_path: \(secretFile)\n")
        let config = try load()
        #expect(config.turnSecret == (try TurnSecret(validating: "fromFile")))
        #expect(config.turnSecretPath == secretFile)
        chmod(secretFile, 0o600)
        #expect {
            try load()
        } throws: { error in
            ((error as? TurnkeeperError)?.reason ?? "").contains("may be read by root alone")
        }
        // A device is not even opened.
        try directory.write(
            "conf.d/90-turnkeeper.yaml", "turn_shared_secret: null\nturn_shared_secret_path: /dev/zero\n")
        #expect {
            try load()
        } throws: { error in
            ((error as? TurnkeeperError)?.reason ?? "").contains("not a regular file")
        }
    }

    @Test("Both an inline secret and a secret path stop Synapse, and us, naming both places")
    func bothSecrets() throws {
        defer { directory.remove() }
        try directory.write("homeserver.yaml", "turn_shared_secret: Zq9vSecretValue\n")
        try directory.write("conf.d/90-turnkeeper.yaml", "turn_shared_secret_path: /etc/x\n")
        #expect {
            try load()
        } throws: { error in
            let reason = (error as? TurnkeeperError)?.reason ?? ""
            return reason.contains("homeserver.yaml, line 1") && reason.contains("90-turnkeeper.yaml, line 1")
                && !reason.contains("Zq9vSecretValue")
        }
    }

    @Test("Malformed YAML names the file and line")
    func malformed() throws {
        defer { directory.remove() }
        try directory.write("homeserver.yaml", "server_name: x\n")
        try directory.write("conf.d/50-broken.yaml", "a: 1\nturn_uris: [\"turn:a\"\nb: 2\n")
        #expect {
            try load()
        } throws: { error in
            let reason = (error as? TurnkeeperError)?.reason ?? ""
            return reason.contains("50-broken.yaml") && reason.contains("line ")
        }
    }

    @Test("Empty and non-mapping files are skipped with a warning; a bare-string turn_uris is an error")
    func skippedAndWrongShapes() throws {
        defer { directory.remove() }
        try directory.write("homeserver.yaml", "turn_uris: [\"turn:a\"]\nturn_shared_secret: s\n")
        try directory.write("conf.d/20-empty.yaml", "")
        try directory.write("conf.d/30-list.yaml", "- a\n- b\n")
        let config = try load()
        #expect(config.warnings.count == 2)
        #expect(config.warnings.allSatisfy { $0.contains("Synapse skips it") })
        try directory.write("conf.d/40-string.yaml", "turn_uris: turn:a\n")
        #expect(throws: TurnkeeperError.self) { try load() }
    }

    @Test("An empty secret file means Synapse hands out nothing, which is an error that says so")
    func emptySecretFile() throws {
        defer { directory.remove() }
        let secretFile = try directory.write("secret", "   \n", mode: 0o640)
        try directory.write("homeserver.yaml", "turn_shared_secret_path: \(secretFile)\n")
        #expect {
            try load()
        } throws: { error in
            ((error as? TurnkeeperError)?.reason ?? "").contains("answers {}")
        }
    }

    @Test("turn_user_lifetime: Synapse's syntax, a bare integer in milliseconds, default 1h")
    func lifetime() throws {
        defer { directory.remove() }
        try directory.write("homeserver.yaml", "turn_user_lifetime: 86400000\n")
        #expect(try load().turnUserLifetime.milliseconds == 86_400_000)
        try directory.write("homeserver.yaml", "turn_user_lifetime: \"1d\"\n")
        #expect(try load().turnUserLifetime.milliseconds == 86_400_000)
        try directory.write("homeserver.yaml", "server_name: x\n")
        #expect(try load().turnUserLifetime.milliseconds == 3_600_000)
        try directory.write("homeserver.yaml", "turn_user_lifetime: soon\n")
        #expect(throws: TurnkeeperError.self) { try load() }
    }
}
