import Foundation
import Glibc
import TestSupport
import Testing
import TurnkeeperConfiguration
import TurnkeeperCredentials

/// A fleet: two coturn instances reading their secrets from one shared user database (Redis, PostgreSQL),
/// rotated by turnkeeper with the same protocol as the SQLite store.
@Suite("Shared user databases", .mayBlock, .tags(.live))
struct FleetStoreTests {
    /// A database both coturns read.
    struct Database: Sendable {
        let kind: String
        let store: TurnkeeperDeployment.Options.Store
        let password: String
        let stop: @Sendable () -> Void

        static func start(_ kind: String) throws -> Database {
            if kind == "redis" {
                let redis = try RedisServer()
                return Database(kind: "Redis", store: .redis(redis), password: redis.password, stop: { redis.stop() })
            }
            let postgres = try PostgresServer()
            return Database(
                kind: "PostgreSQL", store: .postgres(postgres), password: postgres.password, stop: { postgres.stop() })
        }
    }

    @Test(
        "Both coturns accept the new secret, keep the old until retirement; with the database down, check says so",
        arguments: ["redis", "postgres"])
    func fleet(store: String) async throws {
        let database = try Database.start(store)
        var options = TurnkeeperDeployment.Options()
        options.store = database.store
        options.turnUserLifetime = "4s"
        // Removes the database too.
        var deployment = try TurnkeeperDeployment(options)
        defer { deployment.stop() }
        // A second app signing with the secret: a file consumer, switched after Synapse.
        let template = try deployment.directory.write("app.env.template", "TURN_SECRET={{turn_secret}}\n")
        deployment.settings.consumers = [
            .init(
                name: "app",
                kind: .file(
                    .init(
                        path: deployment.directory.file("app.env"), template: template, format: .env,
                        command: ["/bin/true"], credentialLifetime: .seconds(4))))
        ]
        try deployment.writeConfig()
        let first = deployment.coturn
        var secondOptions = CoturnServer.Options()
        secondOptions.userDatabaseLines = deployment.coturn.userDatabaseLines
        let second = try CoturnServer(secrets: [], options: secondOptions)
        defer { second.stop() }
        let directory = deployment.directory
        let original = deployment.original
        let config = deployment.config
        func accepts(_ secret: TurnSecret, _ coturn: CoturnServer) async throws -> Bool {
            let credential = try CredentialMinter(secret: secret)
                .credential(user: "@alice:test.local", expiry: Int64(Date().timeIntervalSince1970) + 600)
            return try await TURNAllocation.succeeds(
                port: coturn.port, username: credential.username, password: credential.password)
        }

        let rotated = try TurnkeeperBinary.run(["rotate", "--config", config], timeout: .seconds(120))
        // coturn's own log says why it refused a login (a database query that failed, a realm), which the
        // rotation's 401 cannot.
        #expect(rotated.status == 0, "\(rotated)\ncoturn's log:\n\(first.log.suffix(3000))")
        let status = try TurnkeeperBinary.run(["status", "--config", config, "--json"])
        let json = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any] ?? [:]
        #expect(json["current"] as? String != original.fingerprint)
        let stateFile =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: directory.file("state/state.json")))) as? [String: Any]
        let newSecret = try TurnSecret(adopting: try #require(stateFile?["current"] as? String), source: "state")
        let app = try String(contentsOfFile: directory.file("app.env"), encoding: .utf8)
        #expect(app == "TURN_SECRET=" + newSecret.withExposedBytes { String(decoding: $0, as: UTF8.self) } + "\n")
        for coturn in [first, second] {
            #expect(try await accepts(newSecret, coturn), "the new secret is refused by coturn on \(coturn.port)")
            #expect(try await accepts(original, coturn), "the old secret was retired too early on \(coturn.port)")
        }

        // After turn_user_lifetime (4 s) and the margin (1 s), the old secret leaves the shared database.
        let retiresAt = Date().addingTimeInterval(6)
        while Date() < retiresAt { try await Task.sleep(for: .milliseconds(200)) }
        let retired = try TurnkeeperBinary.run(["rotate", "--config", config, "--resume"], timeout: .seconds(60))
        #expect(retired.status == 0 && retired.stdout.contains("retired \(original.fingerprint)"), "\(retired)")
        for coturn in [first, second] {
            #expect(try await !accepts(original, coturn), "the retired secret is still accepted on \(coturn.port)")
            #expect(try await accepts(newSecret, coturn))
        }

        let healthy = try TurnkeeperBinary.run(["check", "--config", config])
        #expect(healthy.status == 0 && healthy.stdout.contains("\(database.kind) user database answers"), "\(healthy)")
        #expect(healthy.stdout.contains("file consumer app signs with \(newSecret.fingerprint), which coturn accepts"))
        database.stop()
        let down = try TurnkeeperBinary.run(["check", "--config", config], timeout: .seconds(60))
        #expect(down.status == 1, "\(down)")
        #expect(down.stdout.contains("cannot reach coturn's \(database.kind) at 127.0.0.1:"), "\(down)")
        #expect(down.stdout.contains("every TURN login fails"))
        let failed = try TurnkeeperBinary.run(["rotate", "--config", config], timeout: .seconds(60))
        #expect(failed.status == 1 && failed.stderr.contains("cannot reach coturn's \(database.kind)"), "\(failed)")
        for output in [rotated, retired, healthy, down, failed] {
            #expect(!output.stdout.contains(database.password) && !output.stderr.contains(database.password))
        }
    }
}
