import Glibc
import NIOCore
import TurnkeeperCore
import TurnkeeperCredentials
import TurnkeeperStores
import TurnkeeperTURNClient

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

/// turnserver.conf's lines, plus the restart that makes coturn read them (dropping live calls). A change to
/// the file is not done until coturn is proven to run with it: until then a marker in the state directory
/// says the restart is owed, and every later add or remove (a resumed rotation, a retried retirement)
/// restarts coturn again first.
struct CoturnConfigSecrets: CoturnSecrets {
    let store: CoturnConfigStore
    /// Present from just before turnserver.conf changes until coturn is proven to run with it.
    let owedMarker: String
    /// Runs the restart command, then returns once coturn answers with the file in force: an allocation with
    /// each secret of `accepting` succeeds and, when given, one signed with `refusing` is refused.
    let restart: @Sendable (_ accepting: [TurnSecret], _ refusing: TurnSecret?) async throws -> Void

    func accepted() throws -> [TurnSecret] { try store.secrets() }

    func add(_ secret: TurnSecret) async throws {
        let existing = try store.secrets()
        if !existing.contains(secret) {
            try markOwed()
            try store.setSecrets(existing + [secret])
        }
        try await restartIfOwed(refusing: nil)
    }

    func remove(_ secret: TurnSecret) async throws {
        let existing = try store.secrets()
        if existing.contains(secret) {
            try markOwed()
            try store.setSecrets(existing.filter { $0 != secret })
        }
        try await restartIfOwed(refusing: secret)
    }

    /// True while turnserver.conf has changed and coturn has not been proven to run with it.
    var restartOwed: Bool { access(owedMarker, F_OK) == 0 }

    private func markOwed() throws(TurnkeeperError) {
        try AtomicFile.write(
            Array("coturn has not yet been proven to run with \(store.path)\n".utf8), to: owedMarker,
            permissions: 0o600, maximumPermissions: 0o600, existing: .replace)
    }

    private func restartIfOwed(refusing: TurnSecret?) async throws {
        guard restartOwed else { return }
        try await restart(try store.secrets(), refusing)
        guard unlink(owedMarker) == 0 || errno == ENOENT else {
            throw TurnkeeperError(
                .unwritableFile,
                "cannot remove \(owedMarker): \(errnoDescription(errno)); coturn would be restarted again. Check the "
                    + "state directory.")
        }
    }
}

/// One allocation at coturn.verify_uri, released at once: the question "does coturn accept this secret right
/// now?" asked the way a client asks it.
enum CoturnAllocation {
    /// True when coturn granted it, false when it refused the credential (401). Anything else (no answer,
    /// another error) is thrown: it proves nothing either way.
    static func accepts(_ secret: TurnSecret, at uriText: String, timeout: Duration = .seconds(10)) async throws
        -> Bool
    {
        let credential = try CredentialMinter(secret: secret).credential(
            user: "@turnkeeper-rotation:localhost", expiry: WallClock.nowSeconds() + 600)
        let credentials = TURNCredentials(username: credential.username, password: credential.password)
        switch try await TURNClient.allocateAndRelease(
            at: try TURNURI(uriText), credentials: credentials, timeout: timeout)
        {
        case .granted: return true
        case .refused: return false
        }
    }

    /// "" when coturn accepts every secret of `accepting` and refuses `refusing`, else what it did instead.
    static func fileInForce(
        at text: String, accepting: [TurnSecret], refusing: TurnSecret?, configFile: String, timeout: Duration
    ) async throws -> String {
        for secret in accepting {
            if try await !accepts(secret, at: text, timeout: timeout) {
                return "refuses \(secret.fingerprint), which \(configFile) holds: it still runs with the previous file"
            }
        }
        if let refusing, try await accepts(refusing, at: text, timeout: timeout) {
            return "still accepts \(refusing.fingerprint), which \(configFile) no longer holds: it still runs with "
                + "the previous file, or has that secret from another source (a --static-auth-secret flag in "
                + "coturn's unit, a user database)"
        }
        return ""
    }
}

extension Configuration {
    /// turnserver.conf: coturn.config_file, else /etc/turnserver.conf when it exists (nil when it does not).
    var turnserverConf: (path: String, configured: Bool)? {
        if let path = coturn.configFile { return (path, true) }
        return access(Self.defaultTurnserverConf, F_OK) == 0 ? (Self.defaultTurnserverConf, false) : nil
    }

    static let defaultTurnserverConf = "/etc/turnserver.conf"

    /// store config: present while turnserver.conf has changed and coturn is not yet proven to run with it.
    var coturnRestartOwedMarker: String { rotation.stateDirectory + "/coturn-restart-owed" }
}

/// After turnkeeper took a secret out of coturn: proof, by a real allocation at coturn.verify_uri, that coturn
/// refuses it, or the reason it does not.
struct RetirementProof {
    let configuration: Configuration

    /// Removes `secret` from `store`, then proves coturn refuses it: nil when retired, otherwise why not.
    func retire(_ secret: TurnSecret, from store: any CoturnSecrets) async -> String? {
        do {
            try await store.remove(secret)
        } catch {
            return (error as? TurnkeeperError)?.reason ?? "\(error)"
        }
        return await failure(for: secret)
    }

    /// nil when coturn refused an allocation signed with `secret` (401); otherwise why it is not retired.
    func failure(for secret: TurnSecret) async -> String? {
        let uri = configuration.coturn.verifyURI
        do {
            guard try await CoturnAllocation.accepts(secret, at: uri) else { return nil }
        } catch {
            return "coturn at \(uri) did not answer an allocation (\(error)), so its refusal of "
                + "\(secret.fingerprint) is not proven"
        }
        return "coturn at \(uri) still grants an allocation signed with \(secret.fingerprint): " + stillAccepted(secret)
    }

    /// Why coturn may still accept `secret` after turnkeeper removed it from coturn's store.
    func stillAccepted(_ secret: TurnSecret) -> String {
        let elsewhere =
            "a --static-auth-secret flag in coturn's unit (`systemctl cat coturn`), another user database, or "
            + "a turnserver.conf other than the one turnkeeper reads (set coturn.config_file)"
        guard let (path, _) = configuration.turnserverConf else {
            return "no turnserver.conf was found (coturn.config_file is not set and "
                + "\(Configuration.defaultTurnserverConf) does not exist), so coturn has it from another source: "
                + elsewhere
        }
        let lines: [(line: Int, secret: TurnSecret)]
        do {
            lines = try CoturnConfigStore(path: path).secretLines()
        } catch {
            return "\(path) cannot be read (\(error.reason)); coturn may read it there as a static-auth-secret line, "
                + "or have it from another source: \(elsewhere)"
        }
        let naming = lines.filter { $0.secret == secret }.map(\.line)
        if !naming.isEmpty {
            let list = naming.map { "\(path), line \($0)" }.joined(separator: "; ")
            return "\(list): a static-auth-secret line names it, and coturn accepts static-auth-secret lines beside "
                + "its database. Remove that line, restart coturn, then run `turnkeeper rotate --resume`"
        }
        if configuration.coturn.store == .config {
            return "\(path) no longer names it, so either coturn still runs with the old file (its restart did not "
                + "take effect: `systemctl status coturn`), or it has the secret from another source: \(elsewhere)"
        }
        return "\(path) names it on no static-auth-secret line, so coturn has it from another source: \(elsewhere)"
    }
}
