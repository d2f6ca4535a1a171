import Glibc
import TurnkeeperConfiguration
import TurnkeeperCore
import TurnkeeperCredentials
import TurnkeeperExecution
import TurnkeeperStores

/// The coturn store a configuration names, built with its settings and the passwords in their files now
/// (``CoturnAccess`` builds it at each use).
enum CoturnStores {
    static func make(_ configuration: Configuration) throws(TurnkeeperError) -> any CoturnSecretStore {
        let coturn = configuration.coturn
        switch coturn.store {
        case .sqlite(let database):
            return CoturnSQLiteStore(path: database, realm: coturn.realm)
        case .redis(let redis):
            return CoturnRedisStore(endpoint: try redis.endpoint(), realm: coturn.realm)
        case .postgres(let postgres):
            return CoturnPostgresStore(endpoint: try postgres.endpoint(), realm: coturn.realm)
        case .config(let file):
            // The reader guarantees config_file with store config.
            let path = coturn.configFile ?? Configuration.defaultTurnserverConf
            let probe = AllocationProbe(uri: coturn.verifyURI)
            return CoturnConfigSecrets(
                store: CoturnConfigStore(path: path), owedMarker: configuration.coturnRestartOwedMarker,
                restartCommand: file.restartCommand, timeout: file.restartTimeout
            ) { accepting, refusing, configFile, within in
                try await probe.awaitInForce(
                    accepting: accepting, refusing: refusing, configFile: configFile, within: within)
            }
        }
    }
}

extension Configuration.Coturn.Postgres {
    /// The endpoint, with the password read from its file now.
    func endpoint() throws(TurnkeeperError) -> PostgresEndpoint {
        PostgresEndpoint(
            host: host, port: port, database: database, user: user,
            password: try passwordFile.map { (file) throws(TurnkeeperError) in
                try FileContents.readValue(file, what: "the PostgreSQL password")
            },
            tls: tls, caFile: caFile, timeout: .milliseconds(timeout.milliseconds))
    }
}

extension Configuration.Coturn.Redis {
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

extension Configuration {
    /// turnserver.conf: coturn.config_file, else /etc/turnserver.conf when it exists (nil when it does not).
    var turnserverConf: (path: String, configured: Bool)? {
        if let path = coturn.configFile { return (path, true) }
        return access(Self.defaultTurnserverConf, F_OK) == 0 ? (Self.defaultTurnserverConf, false) : nil
    }
}
