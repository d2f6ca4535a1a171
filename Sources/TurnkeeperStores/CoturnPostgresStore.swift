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
        let (realm, name) = (realm, endpoint.name)
        return try await withSession { session in
            try await session.rows("SELECT value FROM turn_secret WHERE realm = $1", [realm]).map { row in
                guard let value = row.first ?? nil else {
                    throw TurnkeeperError(.storeRefused, "\(name) turn_secret holds a NULL value")
                }
                return try TurnSecret(adopting: value, source: "\(name) turn_secret")
            }
        }
    }

    public func add(_ secret: TurnSecret) async throws {
        let realm = realm
        let value = secret.withExposedBytes { String(decoding: $0, as: UTF8.self) }
        _ = try await withSession { session in
            try await session.rows(
                "INSERT INTO turn_secret (realm, value) VALUES ($1, $2) ON CONFLICT DO NOTHING", [realm, value])
        }
    }

    /// The table grants INSERT and DELETE to turnkeeper's user (asked of PostgreSQL; nothing is written).
    public func proveWritable() async throws {
        let endpoint = endpoint
        let rows = try await withSession { session in
            try await session.rows(
                "SELECT has_table_privilege('turn_secret', 'INSERT') AND has_table_privilege('turn_secret', 'DELETE')")
        }
        guard rows.first?.first == "t" else {
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
        _ = try await withSession { session in
            try await session.rows("DELETE FROM turn_secret WHERE realm = $1 AND value = $2", [realm, value])
        }
    }

    /// An error of the statements, as opposed to one of connecting or logging in.
    private struct StatementFailure: Error {
        let underlying: any Error
    }

    /// One session for `body`, which must finish within the endpoint's timeout.
    private func withSession<Result: Sendable>(
        _ body: @escaping @Sendable (PostgresSession) async throws -> Result
    ) async throws -> Result {
        let endpoint = endpoint
        let outcome: Result?
        do {
            outcome = try await PostgresSession.with(endpoint) { session in
                do {
                    return try await body(session)
                } catch {
                    throw StatementFailure(underlying: error)
                }
            }
        } catch let failure as StatementFailure {
            switch failure.underlying {
            case let error as TurnkeeperError: throw error
            case let error as PostgresTransportError:
                throw TurnkeeperError(.storeUnreachable, "\(endpoint.name) \(ServerText.escaped(error.description))")
            default:
                throw TurnkeeperError(
                    .storeRefused,
                    "\(endpoint.name) refused the query (\(Self.describe(failure.underlying))). Check that the "
                        + "turn_secret table exists (coturn's schema.sql) and that \(endpoint.user) may read and write "
                        + "it (GRANT SELECT, INSERT, DELETE ON turn_secret TO \(endpoint.user)).")
            }
        } catch let error as TurnkeeperError {
            throw TurnkeeperError(error.code, "coturn's \(endpoint.name): \(error.reason)")
        } catch {
            throw Self.connectError(error, endpoint: endpoint)
        }
        guard let outcome else {
            throw TurnkeeperError(.storeUnreachable, "\(endpoint.name) did not answer within \(endpoint.timeout)")
        }
        return outcome
    }

    /// What a failed connection means: the server answered and refused the login (its SQLSTATE says why), or
    /// it could not be reached at all.
    static func connectError(_ error: any Error, endpoint: PostgresEndpoint) -> TurnkeeperError {
        let state = (error as? PostgresServerError)?.sqlState
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

    /// The server's words for a refusal (never the password, which it never has in clear).
    static func describe(_ error: any Error) -> String {
        // Escaped and bounded: a hostile or broken server chooses them.
        if let error = error as? PostgresServerError {
            return ServerText.escaped("\(error.message) (SQLSTATE \(error.sqlState))")
        }
        return ServerText.escaped("\(error)")
    }
}
