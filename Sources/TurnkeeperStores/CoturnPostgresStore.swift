import Logging
import NIOSSL
import PostgresNIO
import TurnkeeperCore
public import TurnkeeperCredentials

/// Where coturn's PostgreSQL user database is, and how turnkeeper logs in to it.
public struct PostgresEndpoint: Sendable {
    public var host: String
    public var port: Int
    public var database: String
    public var user: String
    /// Read from a file by the caller; never logged, never in an error.
    public var password: String?
    public var tls: Bool
    public var timeout: Duration

    public init(
        host: String, port: Int = 5432, database: String = "coturn", user: String = "coturn", password: String?,
        tls: Bool, timeout: Duration = .seconds(5)
    ) {
        self.host = host
        self.port = port
        self.database = database
        self.user = user
        self.password = password
        self.tls = tls
        self.timeout = timeout
    }

    var name: String { "PostgreSQL at \(host):\(port) (database \(database))" }
}

/// coturn's PostgreSQL user database (`psql-userdb`), shared by a fleet of coturn hosts: rows of
/// `turn_secret (realm, value)`, read by coturn on every login. Values are bound, never pasted into SQL.
public struct CoturnPostgresStore: CoturnSecretStore {
    public let endpoint: PostgresEndpoint
    public let realm: String

    public init(endpoint: PostgresEndpoint, realm: String) {
        self.endpoint = endpoint
        self.realm = realm
    }

    public func secrets() async throws -> [TurnSecret] {
        let realm = realm
        let name = endpoint.name
        return try await withConnection { connection, logger in
            let rows = try await connection.query(
                "SELECT value FROM turn_secret WHERE realm = \(realm)", logger: logger)
            var secrets: [TurnSecret] = []
            for try await value in rows.decode(String.self) {
                secrets.append(try TurnSecret(adopting: value, source: "\(name) turn_secret"))
            }
            return secrets
        }
    }

    public func add(_ secret: TurnSecret) async throws {
        let realm = realm
        let value = secret.withExposedBytes { String(decoding: $0, as: UTF8.self) }
        try await withConnection { connection, logger in
            _ = try await connection.query(
                "INSERT INTO turn_secret (realm, value) VALUES (\(realm), \(value)) ON CONFLICT DO NOTHING",
                logger: logger)
        }
    }

    public func remove(_ secret: TurnSecret) async throws {
        let realm = realm
        let value = secret.withExposedBytes { String(decoding: $0, as: UTF8.self) }
        try await withConnection { connection, logger in
            _ = try await connection.query(
                "DELETE FROM turn_secret WHERE realm = \(realm) AND value = \(value)", logger: logger)
        }
    }

    /// One connection for `body`, which must finish within the endpoint's timeout.
    private func withConnection<Result: Sendable>(
        _ body: @escaping @Sendable (PostgresConnection, Logger) async throws -> Result
    ) async throws -> Result {
        let endpoint = endpoint
        var configuration = PostgresConnection.Configuration(
            host: endpoint.host, port: endpoint.port, username: endpoint.user, password: endpoint.password,
            database: endpoint.database,
            tls: endpoint.tls ? .require(try NIOSSLContext(configuration: .makeClientConfiguration())) : .disable)
        let (seconds, attoseconds) = endpoint.timeout.components
        configuration.options.connectTimeout = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
        let logger = Logger(label: "turnkeeper.postgres") { _ in SwiftLogNoOpLogHandler() }
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(configuration: configuration, id: 1, logger: logger)
        } catch {
            throw TurnkeeperError(
                .storeUnreachable,
                "cannot reach coturn's \(endpoint.name) (\(Self.describe(error))). coturn reads secrets from it on "
                    + "every login, so every TURN login fails while it is down: start it, and run it highly available.")
        }
        do {
            let result = try await withThrowingTaskGroup(of: Result?.self) { group in
                group.addTask { try await body(connection, logger) }
                group.addTask {
                    try await Task.sleep(for: endpoint.timeout)
                    return nil
                }
                defer { group.cancelAll() }
                guard let first = try await group.next(), let result = first else {
                    throw TurnkeeperError(
                        .storeUnreachable, "\(endpoint.name) did not answer within \(endpoint.timeout)")
                }
                return result
            }
            try? await connection.close()
            return result
        } catch let error as TurnkeeperError {
            try? await connection.close()
            throw error
        } catch {
            try? await connection.close()
            throw TurnkeeperError(
                .storeUnreachable,
                "\(endpoint.name) refused the query (\(Self.describe(error))). Check that the turn_secret table exists "
                    + "(coturn's schema.sql) and that the user may read and write it.")
        }
    }

    /// PSQLError hides the server's message from `description`; show it, never the password.
    static func describe(_ error: any Error) -> String {
        // The server's words, escaped and bounded: a hostile or broken server chooses them.
        if let error = error as? PSQLError {
            return ServerText.escaped(error.serverInfo?[.message] ?? "\(error.code)")
        }
        return ServerText.escaped("\(error)")
    }
}
