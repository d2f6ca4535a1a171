import Foundation
import Glibc
import TestSupport
import Testing
import TurnkeeperCredentials

/// A fleet: two coturn instances reading their secrets from one shared user database (Redis, PostgreSQL),
/// rotated by turnkeeper with the same protocol as the SQLite store.
@Suite("Shared user databases")
struct FleetStoreTests {
    /// A database both coturns read, as turnkeeper's YAML and coturn's config name it.
    struct Database: Sendable {
        let kind: String
        let coturnLine: String
        let yaml: String
        let password: String
        let stop: @Sendable () -> Void
        let remove: @Sendable () -> Void

        static func start(_ kind: String) throws -> Database {
            if kind == "redis" {
                let redis = try RedisServer()
                return Database(
                    kind: "Redis", coturnLine: redis.coturnLine,
                    yaml: """
                        redis:
                            host: 127.0.0.1
                            port: \(redis.port)
                            password_file: \(redis.passwordFile)
                            timeout: 2s
                        """, password: redis.password, stop: { redis.stop() }, remove: { redis.remove() })
            }
            let postgres = try PostgresServer()
            return Database(
                kind: "PostgreSQL", coturnLine: postgres.coturnLine,
                yaml: """
                    postgres:
                        host: 127.0.0.1
                        port: \(postgres.port)
                        database: coturn
                        user: coturn
                        password_file: \(postgres.passwordFile)
                        timeout: 2s
                    """, password: postgres.password, stop: { postgres.stop() }, remove: { postgres.remove() })
        }
    }

    @Test(
        "Both coturns accept the new secret, keep the old until retirement; with the database down, check says so",
        arguments: ["redis", "postgres"])
    func fleet(store: String) async throws {
        let database = try Database.start(store)
        defer { database.remove() }
        var options = CoturnServer.Options()
        options.userDatabaseLines = [database.coturnLine]
        let first = try CoturnServer(secrets: [], options: options)
        defer { first.stop() }
        let second = try CoturnServer(secrets: [], options: options)
        defer { second.stop() }

        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let original = try TurnSecret.generate()
        try FileManager.default.createDirectory(atPath: directory.file("conf.d"), withIntermediateDirectories: false)
        let homeserver = try directory.write("homeserver.yaml", "server_name: test.local\n")
        _ = try directory.write(
            "conf.d/10-admin.yaml",
            """
            turn_uris: ["turn:127.0.0.1:\(first.port)?transport=udp"]
            turn_shared_secret: "\(original.withExposedBytes { String(decoding: $0, as: UTF8.self) })"
            turn_user_lifetime: 4s
            """)
        let config = try directory.write(
            "turnkeeper.yaml",
            """
            synapse:
              config: [\(homeserver), \(directory.file("conf.d"))]
              managed_file: \(directory.file("conf.d/90-turnkeeper.yaml"))
              group: nogroup
              restart_command: [/bin/true]
            coturn:
              realm: \(first.realm)
              verify_uri: turn:127.0.0.1:\(first.port)?transport=udp
              store: \(store)
              \(database.yaml.replacingOccurrences(of: "\n", with: "\n  "))
            rotation:
              margin: 1s
              state_directory: \(directory.file("state"))
            """)
        func accepts(_ secret: TurnSecret, _ coturn: CoturnServer) async throws -> Bool {
            let credential = try CredentialMinter(secret: secret)
                .credential(user: "@alice:test.local", expiry: Int64(Date().timeIntervalSince1970) + 600)
            return try await TURNAllocation.succeeds(
                port: coturn.port, username: credential.username, password: credential.password)
        }

        let rotated = try TurnkeeperBinary.run(["rotate", "--config", config], timeout: .seconds(120))
        #expect(rotated.status == 0, "\(rotated)")
        let status = try TurnkeeperBinary.run(["status", "--config", config, "--json"])
        let json = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any] ?? [:]
        #expect(json["current"] as? String != original.fingerprint)
        let stateFile =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: directory.file("state/state.json")))) as? [String: Any]
        let newSecret = try TurnSecret(adopting: try #require(stateFile?["current"] as? String), source: "state")
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
