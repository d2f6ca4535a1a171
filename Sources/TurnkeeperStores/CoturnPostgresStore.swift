import Logging
import NIOSSL
import PostgresNIO
import TurnkeeperCore
public import TurnkeeperCredentials
import TurnkeeperExecution

/// Where coturn's PostgreSQL user database is, and how turnkeeper logs in to it.
public struct PostgresEndpoint: Sendable {
    public var host: String
    public var port: Int
    public var database: String
    public var user: String
    /// Read from a file by the caller; never logged, never in an error.
    public var password: String?
    public var tls: Bool
    /// PEM certificates of the CA that signed the server's certificate, instead of the system's roots.
    public var caFile: String?
    public var timeout: Duration

    public init(
        host: String, port: Int = 5432, database: String = "coturn", user: String = "coturn", password: String?,
        tls: Bool, caFile: String? = nil, timeout: Duration = .seconds(5)
    ) {
        self.caFile = caFile
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

    /// The table grants INSERT and DELETE to turnkeeper's user (asked of PostgreSQL; nothing is written).
    public func proveWritable() async throws {
        let endpoint = endpoint
        let granted = try await withConnection { connection, logger -> Bool in
            let rows = try await connection.query(
                "SELECT has_table_privilege('turn_secret', 'INSERT') AND has_table_privilege('turn_secret', 'DELETE')",
                logger: logger)
            for try await value in rows.decode(Bool.self) { return value }
            return false
        }
        guard granted else {
            throw TurnkeeperError(
                .storeRefused,
                "\(endpoint.name) lets \(endpoint.user) read turn_secret but not insert into it or delete from it, so "
                    + "no rotation could change coturn's secrets. GRANT INSERT, DELETE ON turn_secret TO "
                    + "\(endpoint.user) (and give coturn its own read-only user).")
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
            tls: endpoint.tls ? .require(try NIOSSLContext(configuration: Self.tlsConfiguration(endpoint))) : .disable)
        let (seconds, attoseconds) = endpoint.timeout.components
        configuration.options.connectTimeout = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
        let logger = Logger(label: "turnkeeper.postgres") { _ in SwiftLogNoOpLogHandler() }
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(configuration: configuration, id: 1, logger: logger)
        } catch {
            throw Self.connectError(error, endpoint: endpoint)
        }
        do {
            let result = try await withThrowingTaskGroup(of: Result?.self) { group in
                group.addTask { try await body(connection, logger) }
                group.addTask {
                    try await Pause.for(endpoint.timeout)
                    // postgres-nio's queries ignore cancellation: closing the connection is what ends one that
                    // hangs (a table locked by another session, a server that never answers).
                    try? await connection.close()
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
                .storeRefused,
                "\(endpoint.name) refused the query (\(Self.describe(error))). Check that the turn_secret table exists "
                    + "(coturn's schema.sql) and that \(endpoint.user) may read and write it (GRANT SELECT, INSERT, "
                    + "DELETE ON turn_secret TO \(endpoint.user)).")
        }
    }

    /// The client's TLS settings: the server's name and chain checked, against `caFile` when given.
    static func tlsConfiguration(_ endpoint: PostgresEndpoint) -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        if let caFile = endpoint.caFile { configuration.trustRoots = .file(caFile) }
        return configuration
    }

    /// What a failed connection means: the server answered and refused the login (its SQLSTATE says why), or
    /// it could not be reached at all.
    static func connectError(_ error: any Error, endpoint: PostgresEndpoint) -> TurnkeeperError {
        let state = (error as? PSQLError)?.serverInfo?[.sqlState]
        let refusal: String? =
            switch state {
            case "28P01", "28000":
                "refused the login of user \(endpoint.user): a wrong password or user, or pg_hba.conf does not let "
                    + "it in from here. Check coturn.postgres user and password_file"
            case "3D000":
                "has no database \(endpoint.database). Check coturn.postgres database (coturn's is usually coturn)"
            case let state? where state.hasPrefix("42"):
                "refused \(endpoint.user) access. GRANT it SELECT, INSERT, DELETE on turn_secret"
            default: nil
            }
        if let refusal {
            return TurnkeeperError(
                .storeRefused,
                "coturn's \(endpoint.name) \(refusal) (\(describe(error))). It answers, so starting it will not help.")
        }
        return TurnkeeperError(
            .storeUnreachable,
            "cannot reach coturn's \(endpoint.name) (\(describe(error))). coturn reads secrets from it on every "
                + "login, so every TURN login fails while it is down: start it, and run it highly available.")
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
