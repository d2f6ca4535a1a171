import CSQLite
import Glibc
import TurnkeeperCore
public import TurnkeeperCredentials
import TurnkeeperExecution

/// The `turn_secret` rows of coturn's SQLite user database (`userdb`, Debian: /var/lib/turn/turndb).
///
/// coturn reads these rows on every login and caches nothing, so a change takes effect at once, with no
/// restart and no call dropped. coturn 4.6.1 does not wait for a lock: a login that reads while a writer holds
/// the database is refused ("database is locked"). Measured: with a writer busy, 57 of 60 logins failed. So
/// before writing, the database is put in write-ahead-log mode, where readers never wait for a writer (then
/// 60 of 60 passed, under 49,798 write cycles). Each change is one tiny transaction, and a database held by
/// another writer is waited for (busy timeout), then reported.
public struct CoturnSQLiteStore: CoturnSecretStore {
    public let path: String
    /// coturn's `realm`: rows under any other realm are ignored by coturn.
    public let realm: String
    /// How long to wait for a lock held by another process before giving up.
    public let busyTimeoutMilliseconds: Int32

    public init(path: String, realm: String, busyTimeoutMilliseconds: Int32 = 2000) {
        self.path = path
        self.realm = realm
        self.busyTimeoutMilliseconds = busyTimeoutMilliseconds
    }

    // Every public call runs on NIO's thread pool: SQLite may wait up to the busy timeout for coturn's lock.

    /// The secrets coturn accepts for this realm, in no particular order.
    public func secrets() async throws -> [TurnSecret] { try await Blocking.run { try self.readSecrets() } }

    /// Realms that have rows, to catch rows coturn never reads (a realm mismatch).
    public func realmsWithSecrets() async throws -> [String] { try await Blocking.run { try self.readRealms() } }

    /// Adds `secret` for this realm; adding one already there changes nothing.
    public func add(_ secret: TurnSecret) async throws {
        try await Blocking.run {
            try self.write("INSERT OR IGNORE INTO turn_secret (realm, value) VALUES (?1, ?2)", secret, what: "add")
        }
    }

    /// Removes `secret` from this realm; removing one that is not there changes nothing.
    public func remove(_ secret: TurnSecret) async throws {
        try await Blocking.run {
            try self.write("DELETE FROM turn_secret WHERE realm = ?1 AND value = ?2", secret, what: "remove")
        }
    }

    /// "wal" once turnkeeper has written; coturn's readers then never meet a writer's lock. "delete" (Debian's
    /// turndb as shipped) until then.
    public func journalMode() async throws -> String { try await Blocking.run { try self.readJournalMode() } }

    private func readSecrets() throws(TurnkeeperError) -> [TurnSecret] {
        try withDatabase { (database) throws(TurnkeeperError) in
            var secrets: [TurnSecret] = []
            try database.query("SELECT value FROM turn_secret WHERE realm = ?1", [realm]) { value in
                if let secret = try? TurnSecret(adopting: value, source: "a turn_secret row in \(path)") {
                    secrets.append(secret)
                }
            }
            return secrets
        }
    }

    private func readRealms() throws(TurnkeeperError) -> [String] {
        try withDatabase { (database) throws(TurnkeeperError) in
            var realms: [String] = []
            try database.query("SELECT DISTINCT realm FROM turn_secret ORDER BY realm", []) { realms.append($0) }
            return realms
        }
    }

    /// One statement binding (realm, secret), in WAL mode so coturn's readers never meet the write lock.
    private func write(_ sql: String, _ secret: TurnSecret, what: String) throws(TurnkeeperError) {
        try withDatabase { (database) throws(TurnkeeperError) in
            try Self.useWriteAheadLog(database)
            try secret.withExposedBytes { (value) throws(TurnkeeperError) in
                try database.execute(
                    sql, [realm, String(decoding: value, as: UTF8.self)],
                    what: "\(what) a secret (fingerprint \(secret.fingerprint))")
            }
        }
    }

    /// WAL mode persists in the file, so this is a no-op after the first write. SQLite, running as root, gives
    /// the -wal and -shm files the database file's owner, so coturn's user can still open them.
    ///
    /// The switch needs an exclusive lock, and a writer waiting for one blocks every new reader: coturn, which
    /// does not wait, then refuses the login (measured: 19 of 20 switches under logins). So it never waits
    /// holding the lock's claim (busy timeout 0, retried every millisecond for up to 2 s) and does not fsync
    /// inside it (only the header changes; no row is written): measured 3 refused logins in 100 switches, each
    /// one whose read met that instant. `init --move-static-secret` switches right before coturn's restart.
    private static func useWriteAheadLog(_ database: Database) throws(TurnkeeperError) {
        var mode = ""
        try database.query("PRAGMA journal_mode", []) { mode = $0 }
        guard mode.lowercased() != "wal" else { return }
        try database.query("PRAGMA synchronous=OFF", []) { _ in }
        database.setBusyTimeout(0)
        defer { database.setBusyTimeout(nil) }
        // SQLite answers with the mode in force: one that could not switch says its old mode, not an error.
        var attempts = 0
        while true {
            var now = ""
            do throws(TurnkeeperError) {
                try database.query("PRAGMA journal_mode=WAL", []) { now = $0 }
            } catch {
                guard attempts < 2000 else { throw error }
            }
            if now.lowercased() == "wal" { break }
            attempts += 1
            guard attempts <= 2000 else {
                throw TurnkeeperError(
                    .unwritableFile,
                    "cannot switch coturn's database \(database.path) to write-ahead logging (it stays in \(now) mode); "
                        + "nothing was written. Is another process holding it open in exclusive mode? `fuser \(database.path)`"
                )
            }
            usleep(1000)
        }
        try database.query("PRAGMA synchronous=FULL", []) { _ in }
    }

    private func readJournalMode() throws(TurnkeeperError) -> String {
        try withDatabase { (database) throws(TurnkeeperError) in
            var mode = ""
            try database.query("PRAGMA journal_mode", []) { mode = $0 }
            return mode
        }
    }

    private func withDatabase<T>(_ body: (Database) throws(TurnkeeperError) -> T) throws(TurnkeeperError) -> T {
        let database = try Database(path: path, busyTimeout: busyTimeoutMilliseconds)
        defer { database.close() }
        return try body(database)
    }
}

/// One connection, closed after each operation so no lock or handle outlives it.
private final class Database {
    let path: String
    let busyTimeout: Int32
    private let handle: OpaquePointer

    init(path: String, busyTimeout: Int32) throws(TurnkeeperError) {
        var handle: OpaquePointer?
        // Never create: a missing database means a wrong path, not a new empty one coturn would not read. Never
        // follow a link: coturn's user may write its directory, and could point the name at another database.
        let status = sqlite3_open_v2(
            path, &handle, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW, nil)
        guard status == SQLITE_OK, let handle else {
            if let handle { sqlite3_close(handle) }
            throw TurnkeeperError(
                .unreadableFile,
                "cannot open coturn's database \(path): \(String(cString: sqlite3_errstr(status))). Check the path "
                    + "(coturn's userdb=, Debian's default is /var/lib/turn/turndb), that it is not a symbolic link, "
                    + "and that turnkeeper may write it."
            )
        }
        self.path = path
        self.handle = handle
        self.busyTimeout = busyTimeout
        sqlite3_busy_timeout(handle, busyTimeout)
        turnkeeper_sqlite_no_checkpoint_on_close(handle)
    }

    func close() { sqlite3_close(handle) }

    /// nil: back to the timeout the connection was opened with.
    func setBusyTimeout(_ milliseconds: Int32?) { sqlite3_busy_timeout(handle, milliseconds ?? busyTimeout) }

    func execute(_ sql: String, _ parameters: [String], what: String) throws(TurnkeeperError) {
        let statement = try prepare(sql, parameters)
        defer { sqlite3_finalize(statement) }
        // Autocommit: the statement is its own transaction, as short as a write can be.
        let status = sqlite3_step(statement)
        guard status == SQLITE_DONE else { throw failure(status, what: what) }
    }

    func query(_ sql: String, _ parameters: [String], row: (String) throws(TurnkeeperError) -> Void)
        throws(TurnkeeperError)
    {
        let statement = try prepare(sql, parameters)
        defer { sqlite3_finalize(statement) }
        while true {
            let status = sqlite3_step(statement)
            if status == SQLITE_DONE { return }
            guard status == SQLITE_ROW else { throw failure(status, what: "read the secrets") }
            if let text = sqlite3_column_text(statement, 0) {
                try row(String(cString: text))
            }
        }
    }

    private func prepare(_ sql: String, _ parameters: [String]) throws(TurnkeeperError) -> OpaquePointer {
        var statement: OpaquePointer?
        let status = sqlite3_prepare_v2(handle, sql, -1, &statement, nil)
        guard status == SQLITE_OK, let statement else {
            if let statement { sqlite3_finalize(statement) }
            throw failure(status, what: "read the turn_secret table")
        }
        for (index, parameter) in parameters.enumerated() {
            let bound = parameter.withCString { turnkeeper_sqlite_bind_text(statement, Int32(index + 1), $0, -1) }
            guard bound == SQLITE_OK else {
                sqlite3_finalize(statement)
                throw failure(bound, what: "prepare a query")
            }
        }
        return statement
    }

    private func failure(_ status: Int32, what: String) -> TurnkeeperError {
        let message = String(cString: sqlite3_errmsg(handle))
        if status == SQLITE_BUSY || status == SQLITE_LOCKED {
            return TurnkeeperError(
                .unwritableFile,
                "cannot \(what) in \(path): another process holds the database locked (\(message)); nothing was "
                    + "written. While it does, coturn refuses every login too: find it with `fuser \(path)`."
            )
        }
        if message.contains("no such table") {
            return TurnkeeperError(
                .unreadableFile,
                "\(path) has no turn_secret table, so it is not coturn's user database. Point the store at coturn's "
                    + "userdb (start coturn once to create it, or load /usr/share/coturn/schema.sql)."
            )
        }
        return TurnkeeperError(.unwritableFile, "cannot \(what) in \(path): \(message); nothing was written.")
    }
}
