import Foundation
import TestSupport
import Testing
import TurnkeeperCredentials
import TurnkeeperStores
import TurnkeeperSynapse

/// `turnkeeper rotate` given broken input: it stops with a clear error and damages nothing.
/// Synapse is only a config directory here: none of these rotations may reach its restart.
@Suite("turnkeeper rotate refuses bad input", .mayBlock, .tags(.live))
struct RotationBadInputTests {
    struct Setup {
        let base: TurnkeeperDeployment
        var coturn: CoturnServer { base.coturn }
        var directory: TemporaryDirectory { base.directory }
        var secret: TurnSecret { base.original }

        var homeserver: String { base.homeserverYAML }
        var managedFile: String { base.managedFile }
        var stateFile: String { base.stateDirectory + "/state.json" }

        /// turnkeeper.yaml, naming `realm` instead of coturn's.
        func config(realm: String? = nil) throws -> String {
            try base.writeConfig { yaml in
                if let realm { yaml.coturn.realm = realm }
            }
        }

        func stop() { base.stop() }
    }

    /// Synapse's secret in homeserver.yaml; a restart command that fails, since none may run.
    static func setup() throws -> Setup {
        var options = TurnkeeperDeployment.Options()
        options.secretPlace = .homeserver
        options.turnUserLifetime = nil
        options.group = "0"
        options.synapseRestart = ["/bin/false"]
        options.margin = nil
        return Setup(base: try TurnkeeperDeployment(options))
    }

    @Test("Malformed YAML in Synapse's config: exit 2 naming file and line; coturn, Synapse and state untouched")
    func malformedHomeserver() async throws {
        let setup = try Self.setup()
        defer { setup.stop() }
        try setup.directory.write("synapse/conf.d/50-broken.yaml", "turn_uris: [\"turn:a\"\nx: 1\n")
        let output = try TurnkeeperBinary.run(["rotate", "--config", try setup.config()])
        #expect(output.status == 2)
        #expect(output.stderr.contains("50-broken.yaml") && output.stderr.contains("line"))
        #expect(!FileManager.default.fileExists(atPath: setup.managedFile))
        #expect(!FileManager.default.fileExists(atPath: setup.stateFile))
        #expect(
            try await CoturnSQLiteStore(path: setup.coturn.userDatabase, realm: setup.coturn.realm).secrets().isEmpty)
    }

    @Test("A state file that exists but cannot be read stops the rotation; it is never silently replaced")
    func unreadableState() async throws {
        let setup = try Self.setup()
        defer { setup.stop() }
        // As root no permission keeps us out, so a directory stands where state.json should be.
        try FileManager.default.createDirectory(atPath: setup.stateFile, withIntermediateDirectories: true)
        let output = try TurnkeeperBinary.run(["rotate", "--config", try setup.config()])
        #expect(output.status == 2, "\(output)")
        #expect(output.stderr.contains(setup.stateFile))
        var isDirectory: ObjCBool = false
        #expect(
            FileManager.default.fileExists(atPath: setup.stateFile, isDirectory: &isDirectory) && isDirectory.boolValue)
        #expect(
            try await CoturnSQLiteStore(path: setup.coturn.userDatabase, realm: setup.coturn.realm).secrets().isEmpty)
        #expect(!FileManager.default.fileExists(atPath: setup.managedFile))
    }

    @Test("A realm coturn does not serve: verification fails, the new secret is taken out again, Synapse is untouched")
    func realmMismatch() async throws {
        let setup = try Self.setup()
        defer { setup.stop() }
        let wrongRealm = "not-\(setup.coturn.realm)"
        let output = try TurnkeeperBinary.run(["rotate", "--config", try setup.config(realm: wrongRealm)])
        #expect(output.status == 1, "\(output)")
        #expect(output.stderr.contains("coturn did not grant an allocation with the new secret"))
        // Only the adopted secret stays in the database; the new one was removed; Synapse's files are as they were.
        #expect(
            try await CoturnSQLiteStore(path: setup.coturn.userDatabase, realm: wrongRealm).secrets() == [setup.secret])
        #expect(!FileManager.default.fileExists(atPath: setup.managedFile))
        let status = try TurnkeeperBinary.run(["status", "--config", try setup.config(realm: wrongRealm)])
        #expect(status.stdout.contains("phase:          idle"))
        #expect(status.stdout.contains("current secret: \(setup.secret.fingerprint)"))
        #expect(status.stdout.contains("last result:    failed"))
    }

    @Test("coturn's database locked by another process: a bounded wait, a clear error, nothing half-written")
    func lockedDatabase() async throws {
        let setup = try Self.setup()
        defer { setup.stop() }
        let holder = try SQLiteLockHolder(database: setup.coturn.userDatabase, in: setup.directory)
        let output = try TurnkeeperBinary.run(["rotate", "--config", try setup.config()])
        #expect(output.status == 2, "\(output)")
        #expect(output.stderr.contains("locked") && output.stderr.contains("nothing was written"))
        #expect(holder.release() == 0)
        #expect(!FileManager.default.fileExists(atPath: setup.stateFile))
        #expect(!FileManager.default.fileExists(atPath: setup.managedFile))
        #expect(
            try await CoturnSQLiteStore(path: setup.coturn.userDatabase, realm: setup.coturn.realm).secrets().isEmpty)
    }
}

/// Rotation with coturn's config file as the store: turnkeeper edits static-auth-secret lines and restarts
/// coturn (as documented, each restart drops calls in progress; the sqlite store avoids that).
@Suite("turnkeeper rotate with the config-file store", .mayBlock, .tags(.live))
struct ConfigStoreRotationTests {
    @Test("Old and new secrets are in turnserver.conf and accepted by the restarted coturn; Synapse switches")
    func configStore() async throws {
        var options = TurnkeeperDeployment.Options()
        options.store = .config
        options.secretPlace = .homeserver
        options.turnUserLifetime = nil
        options.group = "0"
        options.margin = nil
        let deployment = try TurnkeeperDeployment(options)
        defer { deployment.stop() }
        let original = deployment.original
        let text = original.withExposedBytes { String(decoding: $0, as: UTF8.self) }
        let coturn = deployment.coturn
        let config = deployment.config
        let output = try TurnkeeperBinary.run(["rotate", "--config", config], timeout: .seconds(120))
        #expect(output.status == 0, "\(output)")
        let secrets = try CoturnConfigStore(path: coturn.configPath).secrets()
        #expect(secrets.count == 2 && secrets.contains(original))
        let new = try #require(secrets.first { $0 != original })
        #expect(
            try SynapseConfig.load([deployment.homeserverYAML, deployment.confD])
                .turnSecret == new)
        // The coturn running now (restarted by turnkeeper) accepts both.
        let peer = try TurnPeer()
        defer { peer.stop() }
        for secret in [original, new] {
            let credential = try CredentialMinter(secret: secret).credential(
                user: "@a:b", expiry: Int64(Date().timeIntervalSince1970) + 600)
            let result = try coturnClientAllocates(
                server: coturn, peer: peer, username: credential.username, password: credential.password)
            #expect(result.status == 0, "\(secret.fingerprint): \(result)\ncoturn's log:\n\(coturn.log.suffix(3000))")
        }
        #expect(!output.stdout.contains(text) && !output.stderr.contains(text))
    }
}
