import Foundation
import Glibc
import NIOCore
import Synchronization
import TestSupport
import Testing
import TurnkeeperCore
import TurnkeeperCredentials
import TurnkeeperStores
import TurnkeeperTURNClient

@Suite("coturn's SQLite user database as a secret store", .mayBlock, .tags(.live))
struct CoturnSQLiteStoreTests {
    /// True when coturn grants an allocation to a credential signed with `secret`.
    private func coturnAccepts(_ secret: TurnSecret, _ server: CoturnServer) async throws -> Bool {
        let credential = try CredentialMinter(secret: secret)
            .credential(user: "@a:b", expiry: Int64(Date().timeIntervalSince1970) + 600)
        return try await TURNAllocation.succeeds(
            port: server.port,
            transport: .tcp,
            username: credential.username,
            password: credential.password
        )
    }

    /// Expects coturn to grant `secret`, and shows coturn's log when it does not.
    private func expectAccepted(
        _ secret: TurnSecret, _ server: CoturnServer, sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let accepted = try await coturnAccepts(secret, server)
        #expect(accepted, "coturn's log:\n\(server.log.suffix(4000))", sourceLocation: sourceLocation)
    }

    @Test("Rows added while coturn runs are accepted at once; removed rows are refused at once; no restart")
    func liveChanges() async throws {
        let server = try CoturnServer(secrets: [])
        defer { server.stop() }
        let store = CoturnSQLiteStore(path: server.userDatabase, realm: server.realm)
        let old = try TurnSecret.generate()
        let new = try TurnSecret.generate()
        #expect(try await store.secrets().isEmpty)
        #expect(try await !coturnAccepts(old, server))

        try await store.add(old)
        try await store.add(old)  // idempotent
        #expect(try await store.secrets() == [old])
        try await expectAccepted(old, server)

        try await store.add(new)
        #expect(Set(try await store.secrets().map(\.fingerprint)) == [old.fingerprint, new.fingerprint])
        try await expectAccepted(old, server)
        try await expectAccepted(new, server)

        try await store.remove(old)
        try await store.remove(old)  // idempotent
        #expect(try await store.secrets() == [new])
        #expect(try await !coturnAccepts(old, server))
        try await expectAccepted(new, server)
        #expect(try await store.realmsWithSecrets() == [server.realm])
    }

    @Test("Rows under another realm are not this store's, and coturn ignores them too")
    func otherRealm() async throws {
        let server = try CoturnServer(secrets: [])
        defer { server.stop() }
        let wrongRealm = CoturnSQLiteStore(path: server.userDatabase, realm: "not-\(server.realm)")
        let secret = try TurnSecret.generate()
        try await wrongRealm.add(secret)
        #expect(try await CoturnSQLiteStore(path: server.userDatabase, realm: server.realm).secrets().isEmpty)
        #expect(try await wrongRealm.realmsWithSecrets() == ["not-\(server.realm)"])
        #expect(try await !coturnAccepts(secret, server))
    }

    @Test("A database locked by another process: a bounded wait, then a clear error, and nothing written")
    func locked() async throws {
        let server = try CoturnServer(secrets: [])
        defer { server.stop() }
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let holder = try SQLiteLockHolder(database: server.userDatabase, in: directory)

        let store = CoturnSQLiteStore(path: server.userDatabase, realm: server.realm, busyTimeoutMilliseconds: 300)
        let secret = try TurnSecret.generate()
        await #expect {
            try await store.add(secret)
        } throws: { error in
            let reason = (error as? TurnkeeperError)?.reason ?? ""
            return reason.contains("locked") && reason.contains("nothing was written")
                && !reason.contains(
                    secret.withExposedBytes { String(decoding: $0, as: UTF8.self) })
        }
        #expect(holder.release() == 0)
        #expect(try await store.secrets().isEmpty)
    }

    @Test("A missing file and a database that is not coturn's are named as such; no file is created")
    func wrongFiles() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let missing = directory.file("no-such-db")
        await #expect {
            try await CoturnSQLiteStore(path: missing, realm: "r").secrets()
        } throws: { error in
            ((error as? TurnkeeperError)?.reason ?? "").contains("userdb=")
        }
        #expect(!FileManager.default.fileExists(atPath: missing))
        let sqlite = try ProcessRunner.which("python3", package: "python3")
        let other = directory.file("other.db")
        _ = try ProcessRunner.run(
            sqlite, ["-c", "import sqlite3, sys; sqlite3.connect(sys.argv[1]).execute('CREATE TABLE t (x)')", other])
        await #expect {
            try await CoturnSQLiteStore(path: other, realm: "r").add(TurnSecret.generate())
        } throws: { error in
            ((error as? TurnkeeperError)?.reason ?? "").contains("no turn_secret table")
        }
    }

    @Test("Logins during a stream of writes are all accepted: the store puts coturn's database in WAL mode")
    func loginsDuringWrites() async throws {
        let server = try CoturnServer(secrets: [])
        defer { server.stop() }
        let store = CoturnSQLiteStore(path: server.userDatabase, realm: server.realm)
        let secret = try TurnSecret.generate()
        try await store.add(secret)
        #expect(try await store.journalMode() == "wal")
        // coturn's open connections notice the switch from the rollback journal on their next read; the steady
        // state, a WAL database being written, is what is measured.
        #expect(try await coturnAccepts(secret, server))
        let logBefore = server.log.count
        // 40 logins, each begun once a writer (adding and removing another secret) has committed at least once,
        // and made while it goes on writing; the writer stops when the login is answered, or after 2,000 rounds.
        let other = try TurnSecret.generate()
        var refused = 0
        var written = 0
        for _ in 0..<40 {
            let wrote = Flag()
            let stop = Flag()
            let finished = Flag()
            let writer = Task.detached {
                defer { finished.set() }
                let store = CoturnSQLiteStore(path: server.userDatabase, realm: server.realm)
                var count = 0
                while !stop.isSet && count < 2_000 {
                    try await store.add(other)
                    try await store.remove(other)
                    count += 1
                    wrote.set()
                }
                return count
            }
            // The first commit is an event to wait for; the deadline only guards against a hang.
            let clock = ContinuousClock()
            let deadline = clock.now + .seconds(120)
            while !wrote.isSet && !finished.isSet && clock.now < deadline {
                try await Task.sleep(for: .milliseconds(1))
            }
            let accepted = try await coturnAccepts(secret, server)
            stop.set()
            let rounds = try await writer.value
            try #require(rounds > 0, "the writer never committed")
            written += rounds
            if !accepted { refused += 1 }
        }
        #expect(
            refused == 0, "\(refused) of 40 logins refused while the database was being written (\(written) rounds)")
        #expect(!server.log.dropFirst(logBefore).contains("database is locked"))
    }

    /// coturn 4.6.1 reads without a busy timeout. Switching a database it reads to WAL used to refuse a login in
    /// 19 of 20 adoptions under traffic (a writer waiting for its exclusive lock blocks every new reader). The
    /// store now switches without waiting (busy timeout 0, retried) and without fsyncs inside the lock, so only
    /// a login whose read meets that instant itself can be refused: measured 2 in 80 switches, never one after.
    /// How many logins overlap the switch depends on the scheduler (a busy machine may pause the switch while
    /// it holds the lock: 2 logins in one round, with two CPU hogs), so only their place is asserted.
    @Test("The switch to WAL under continuous logins, 20 times: only logins that overlap the switch can be refused")
    func walSwitchUnderLogins() async throws {
        let server = try CoturnServer(secrets: [])
        defer { server.stop() }
        let secret = try TurnSecret.generate()
        let store = CoturnSQLiteStore(path: server.userDatabase, realm: server.realm)
        var refusedInAll = 0
        var loginsInAll = 0
        for round in 0..<20 {
            // Back to the rollback journal, as Debian ships turndb: only while coturn is stopped can it be.
            if round > 0 {
                try server.restart { try CoturnDatabase.execute(server.userDatabase, "PRAGMA journal_mode=DELETE") }
            }
            #expect(try await store.journalMode() == "delete", "round \(round)")
            // The secret coturn accepts, written without turnkeeper (which would switch the journal here).
            try CoturnDatabase.execute(
                server.userDatabase,
                "INSERT OR IGNORE INTO turn_secret (realm, value) VALUES ('\(server.realm)', '\(secretText(secret))')")
            // Logins back to back, from before the adoption's write until ten logins after it.
            let stop = Flag()
            let count = Counter()
            let refusals = Mutex<[Int]>([])
            let logins = Task.detached {
                while !stop.isSet && count.value < 5_000 {
                    let index = count.value
                    if try await !coturnAccepts(secret, server) { refusals.withLock { $0.append(index) } }
                    count.increment()
                }
            }
            try await count.wait(atLeast: 1)
            let before = count.value
            try await store.add(try TurnSecret.generate())
            let switched = count.value
            try await count.wait(atLeast: switched + 10)
            stop.set()
            try await logins.value
            let refused = refusals.withLock { $0 }
            loginsInAll += count.value
            refusedInAll += refused.count
            #expect(try await store.journalMode() == "wal", "round \(round)")
            // Logins begun before the switch began, or after it ended, are never refused.
            #expect(
                refused.allSatisfy { $0 >= before && $0 <= switched },
                "round \(round): logins \(refused) refused; the switch ran during logins \(before)...\(switched)")
        }
        // What was measured, for docs/rotation.md.
        print("WAL switch under logins: \(refusedInAll) of \(loginsInAll) logins refused across 20 switches")
    }

    @Test("Written by root, the -wal and -shm files keep the database owner's user, so coturn can open them")
    func walOwnership() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let database = directory.file("turndb")
        try CoturnDatabase.create(at: database)
        let nobody = getpwnam("nobody").pointee.pw_uid
        chown(directory.path, nobody, gid_t(UInt32.max))
        chown(database, nobody, gid_t(UInt32.max))
        let store = CoturnSQLiteStore(path: database, realm: "r")
        try await store.add(try TurnSecret.generate())
        // SQLite keeps the -wal file while a connection may still use it; the -shm always exists in WAL mode.
        for suffix in ["-shm"] where FileManager.default.fileExists(atPath: database + suffix) {
            #expect(ownership(of: database + suffix).uid == nobody, "\(suffix) is not owned by the database's owner")
        }
        #expect(try await store.journalMode() == "wal")
    }
}

/// A count another task waits on.
private final class Counter: Sendable {
    private let count = Atomic<Int>(0)

    var value: Int { count.load(ordering: .acquiring) }

    func increment() { count.add(1, ordering: .releasing) }

    /// Returns once the count reaches `target`; the deadline only guards against a hang.
    func wait(atLeast target: Int) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(120)
        while value < target {
            guard clock.now < deadline else { throw TestFailure("the count stayed at \(value), below \(target)") }
            try await Task.sleep(for: .milliseconds(1))
        }
    }
}

private func secretText(_ secret: TurnSecret) -> String {
    secret.withExposedBytes { String(decoding: $0, as: UTF8.self) }
}
