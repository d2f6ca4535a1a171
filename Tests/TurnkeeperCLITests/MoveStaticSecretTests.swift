import Foundation
import Glibc
import TestSupport
import Testing
import TurnkeeperCredentials
import TurnkeeperStores

/// `turnkeeper init --move-static-secret` (issue 26): Synapse's TURN howto puts the secret in turnserver.conf,
/// where every rotation restarts coturn. One command moves it into coturn's database with one restart, proves
/// it, and rewrites turnkeeper.yaml; rotations after it never restart coturn.
@Suite("init --move-static-secret", .mayBlock, .tags(.live))
struct MoveStaticSecretTests {
    /// coturn's own pidfile: the PID of the turnserver running now (restarts go through a supervisor).
    func coturnPID(_ lab: TurnkeeperDeployment) throws -> String {
        try String(contentsOfFile: lab.coturn.directory.file("turnserver.pid"), encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func staticLines(_ lab: TurnkeeperDeployment) throws -> [Substring] {
        try String(contentsOfFile: lab.coturn.configPath, encoding: .utf8).split(separator: "\n")
            .filter { $0.hasPrefix("static-auth-secret") }
    }

    @Test("One restart, proven; the file backed up; store: sqlite; two rotations after it leave coturn's PID alone")
    func moves() async throws {
        var options = TurnkeeperDeployment.Options()
        options.store = .config
        let lab = try TurnkeeperDeployment(options)
        defer { lab.stop() }
        let secret = secretText(lab.original)
        #expect(try staticLines(lab).count == 1)
        let before = try coturnPID(lab)

        let moved = try lab.run(["init", "--move-static-secret"])
        #expect(moved.status == 0, "\(moved)")
        #expect(!moved.stdout.contains(secret) && !moved.stderr.contains(secret))
        #expect(moved.stdout.contains("way back"), "\(moved)")
        #expect(try staticLines(lab).isEmpty)
        let after = try coturnPID(lab)
        #expect(after != before, "coturn was not restarted")
        #expect(
            try await CoturnSQLiteStore(path: lab.coturn.userDatabase, realm: lab.coturn.realm).secrets() == [
                lab.original
            ])
        #expect(
            try await CoturnSQLiteStore(path: lab.coturn.userDatabase, realm: lab.coturn.realm).journalMode() == "wal")
        #expect(try await lab.accepts(lab.original))
        // The backup beside turnserver.conf holds the line, readable by root and coturn's group only.
        let backups = try FileManager.default.contentsOfDirectory(atPath: lab.coturn.directory.path)
            .filter { $0.contains(".turnkeeper-backup-") }
        #expect(backups.count == 1)
        let backup = lab.coturn.directory.file(backups.first ?? "")
        #expect(permissions(of: backup) & 0o037 == 0)
        #expect(try String(contentsOfFile: backup, encoding: .utf8).contains("static-auth-secret=\(secret)"))
        let yaml = try String(contentsOfFile: lab.config, encoding: .utf8)
        #expect(yaml.contains("store: sqlite") && !yaml.contains(secret), "\(yaml)")

        // Two rotations: coturn keeps running, the same process throughout.
        for _ in 0..<2 {
            let rotate = try lab.run(["rotate"])
            #expect(rotate.status == 0, "\(rotate)")
            #expect(try coturnPID(lab) == after)
        }
        #expect(try await lab.accepts(try lab.currentSecret()))
        // Nothing left to move: said, and nothing changed.
        let again = try lab.run(["init", "--move-static-secret"])
        #expect(again.status == 0 && again.stdout.contains("nothing to move"), "\(again)")
    }

    @Test("A restart that fails: turnserver.conf is put back byte for byte, coturn keeps the secret, exit 1")
    func failsBack() async throws {
        var options = TurnkeeperDeployment.Options()
        options.store = .config
        let lab = try TurnkeeperDeployment(options)
        defer { lab.stop() }
        let original = try Data(contentsOf: URL(fileURLWithPath: lab.coturn.configPath))
        let restart = lab.settings.coturn.restartCommand ?? []
        // The first restart fails; the one that puts the file back works.
        let script = try lab.directory.write(
            "restart-once-fails.sh",
            "#!/bin/sh\nif [ ! -e \(lab.directory.file("failed-once")) ]; then touch \(lab.directory.file("failed-once")); "
                + "exit 1; fi\nexec \(restart.map { "'\($0)'" }.joined(separator: " "))\n", mode: 0o700)
        try lab.writeConfig { $0.coturn.restartCommand = ["/bin/sh", script] }
        let moved = try lab.run(["init", "--move-static-secret"])
        #expect(moved.status == 1, "\(moved)")
        #expect(moved.stderr.contains("was put back as it was, and coturn, restarted on it, accepts"), "\(moved)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: lab.coturn.configPath)) == original)
        #expect(try await lab.accepts(lab.original))
        let yaml = try String(contentsOfFile: lab.config, encoding: .utf8)
        #expect(yaml.contains("store: config"))
    }
}

extension MoveStaticSecretTests {
    @Test("A database coturn does not read under that realm: refused before anything changes (a test secret proves it)")
    func wrongRealm() async throws {
        var options = TurnkeeperDeployment.Options()
        options.store = .config
        let lab = try TurnkeeperDeployment(options)
        defer { lab.stop() }
        let original = try Data(contentsOf: URL(fileURLWithPath: lab.coturn.configPath))
        let before = try coturnPID(lab)
        try lab.writeConfig { $0.coturn.realm = "not-coturns.example" }
        let moved = try lab.run(["init", "--move-static-secret"])
        #expect(moved.status == 1, "\(moved)")
        #expect(moved.stderr.contains("refused a test secret"), "\(moved)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: lab.coturn.configPath)) == original)
        #expect(try coturnPID(lab) == before, "coturn was restarted although nothing was moved")
        #expect(
            try await CoturnSQLiteStore(path: lab.coturn.userDatabase, realm: "not-coturns.example").secrets().isEmpty)
        let backups = try FileManager.default.contentsOfDirectory(atPath: lab.coturn.directory.path)
            .filter { $0.contains(".turnkeeper-backup-") }
        #expect(backups.isEmpty)
    }
}

private func secretText(_ secret: TurnSecret) -> String {
    secret.withExposedBytes { String(decoding: $0, as: UTF8.self) }
}
