import TurnkeeperCore
import TurnkeeperCredentials
import TurnkeeperStores

/// Where coturn reads its secrets from, as the rotation sees it.
protocol CoturnSecrets {
    func add(_ secret: TurnSecret) async throws
    func remove(_ secret: TurnSecret) async throws
    /// The secrets coturn accepts now.
    func accepted() async throws -> [TurnSecret]
}

extension CoturnSQLiteStore: CoturnSecrets {
    func accepted() throws -> [TurnSecret] { try secrets() }
}

extension CoturnRedisStore: CoturnSecrets {
    func accepted() async throws -> [TurnSecret] { try await secrets() }
}

extension CoturnPostgresStore: CoturnSecrets {
    func accepted() async throws -> [TurnSecret] { try await secrets() }
}

extension Configuration.Postgres {
    /// The endpoint, with the password read from its file now.
    func endpoint() throws(TurnkeeperError) -> PostgresEndpoint {
        PostgresEndpoint(
            host: host, port: port, database: database, user: user,
            password: try passwordFile.map { (file) throws(TurnkeeperError) in
                try FileContents.readValue(file, what: "the PostgreSQL password")
            },
            tls: tls, timeout: .milliseconds(timeout.milliseconds))
    }
}

extension Configuration.Redis {
    /// The endpoint, with the password read from its file now.
    func endpoint() throws(TurnkeeperError) -> RedisEndpoint {
        RedisEndpoint(
            host: host, port: port, database: database, username: username,
            password: try passwordFile.map { (file) throws(TurnkeeperError) in
                try FileContents.readValue(file, what: "the Redis password")
            },
            timeout: .milliseconds(timeout.milliseconds))
    }
}

/// turnserver.conf's lines, plus the restart that makes coturn read them (dropping live calls).
struct CoturnConfigSecrets: CoturnSecrets {
    let store: CoturnConfigStore
    /// Runs the restart command and returns once coturn answers again.
    let restart: @Sendable () async throws -> Void

    func accepted() throws -> [TurnSecret] { try store.secrets() }

    func add(_ secret: TurnSecret) async throws {
        let existing = try store.secrets()
        guard !existing.contains(secret) else { return }
        try store.setSecrets(existing + [secret])
        try await restart()
    }

    func remove(_ secret: TurnSecret) async throws {
        let existing = try store.secrets()
        guard existing.contains(secret) else { return }
        try store.setSecrets(existing.filter { $0 != secret })
        try await restart()
    }
}
