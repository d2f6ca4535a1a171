import TurnkeeperConfiguration
import TurnkeeperCredentials

/// turnkeeper.yaml as the tests write it: the settings each suite varies, as strings, turned into turnkeeper's typed
/// configuration by ``typed()`` and into text by turnkeeper's own renderer.
public struct TestConfiguration: Sendable {
    public struct Synapse: Sendable {
        public var config: [String]
        public var managedFile: String?
        public var mode: String?
        public var secretFile: String?
        /// The test machine has no matrix-synapse group.
        public var group: String? = "nogroup"
        public var restartCommand: [String]?
        public var healthURL: String?
        public var homeserver: String?
        public var accessTokenFile: String?
        public var turnAllowGuests: Bool?

        public init(config: [String]) { self.config = config }
    }

    public struct Redis: Sendable {
        public var host = "127.0.0.1"
        public var port: Int
        public var username: String?
        public var passwordFile: String?
        public var timeout: String?

        public init(port: Int) { self.port = port }
    }

    public struct Postgres: Sendable {
        public var host = "127.0.0.1"
        public var port: Int
        public var database: String
        public var user: String
        public var passwordFile: String?
        public var timeout: String?

        public init(port: Int, database: String, user: String) {
            self.port = port
            self.database = database
            self.user = user
        }
    }

    public struct Coturn: Sendable {
        public var realm: String
        public var verifyURI: String
        public var store: String?
        public var database: String?
        public var configFile: String?
        public var restartCommand: [String]?
        public var restartTimeout: String?
        public var redis: Redis?
        public var postgres: Postgres?

        public init(realm: String, verifyURI: String) {
            self.realm = realm
            self.verifyURI = verifyURI
        }
    }

    public struct Rotation: Sendable {
        public var mode: String?
        public var rootKeyFile: String?
        public var previousRootKeyFile: String?
        public var epoch: String?
        /// Role turn: rotation.keep_previous_epochs.
        public var keepPreviousEpochs: Int?
        public var interval: String?
        public var margin: String?
        public var stateDirectory: String

        public init(stateDirectory: String) { self.stateDirectory = stateDirectory }
    }

    public struct Daemon: Sendable {
        public var listen: String?
        public var probeInterval: String?
        public var retryInitial: String?
        public var retryMax: String?
        public var calltestHomeserver: String?
        public var auditInterval: String?

        public init() {}
    }

    public var role: String?
    public var synapse: Synapse?
    public var coturn: Coturn
    public var rotation: Rotation
    public var daemon: Daemon?
    /// Apps besides Synapse, as turnkeeper's typed configuration has them.
    public var consumers: [Configuration.Consumer] = []
    /// YAML appended as it is: what a suite tests beyond the settings above.
    public var extra = ""

    public init(synapse: Synapse?, coturn: Coturn, rotation: Rotation) {
        self.synapse = synapse
        self.coturn = coturn
        self.rotation = rotation
    }

    /// The file's text, rendered by turnkeeper's own renderer from the typed configuration these settings
    /// describe (so what the tests write is what `turnkeeper provision` would write), then `extra`.
    public func render() throws -> String {
        try typed().rendered() + extra
    }

    /// These settings as turnkeeper's typed configuration; a combination it cannot express is a test error.
    public func typed() throws -> Configuration {
        func duration(_ text: String?, _ fallback: SynapseDuration) throws -> SynapseDuration {
            try text.map { try SynapseDuration(parsing: $0) } ?? fallback
        }
        var configuration = Configuration(
            coturn: .init(realm: coturn.realm, verifyURI: coturn.verifyURI, configFile: coturn.configFile))
        switch coturn.store ?? "sqlite" {
        case "sqlite":
            configuration.coturn.store = .sqlite(database: coturn.database ?? "/var/lib/turn/turndb")
        case "config":
            configuration.coturn.store = .config(
                .init(
                    restartCommand: coturn.restartCommand ?? ["systemctl", "restart", "coturn"],
                    restartTimeout: try duration(coturn.restartTimeout, .seconds(30))))
        case "redis":
            let redis = try coturn.redis.orThrow("store redis without coturn.redis")
            configuration.coturn.store = .redis(
                .init(
                    host: redis.host, port: redis.port, username: redis.username, passwordFile: redis.passwordFile,
                    timeout: try duration(redis.timeout, .seconds(5))))
        case "postgres":
            let postgres = try coturn.postgres.orThrow("store postgres without coturn.postgres")
            configuration.coturn.store = .postgres(
                .init(
                    host: postgres.host, port: postgres.port, database: postgres.database, user: postgres.user,
                    passwordFile: postgres.passwordFile, timeout: try duration(postgres.timeout, .seconds(5))))
        case let other:
            throw TestFailure("no coturn store \(other)")
        }
        if let synapse {
            var typed = Configuration.Synapse(configPaths: synapse.config)
            if let file = synapse.managedFile { typed.managedFile = file }
            switch (synapse.mode ?? "inline", synapse.secretFile) {
            case ("path", let file?): typed.secret = .file(file)
            case ("inline", nil): typed.secret = .inline
            default:
                throw TestFailure(
                    "synapse.mode \(synapse.mode ?? "inline") with secret file \(synapse.secretFile ?? "none")")
            }
            if let group = synapse.group { typed.group = group }
            if let command = synapse.restartCommand { typed.restartCommand = command }
            typed.healthURL = synapse.healthURL
            typed.turnAllowGuests = synapse.turnAllowGuests
            switch (synapse.homeserver, synapse.accessTokenFile) {
            case (let homeserver?, let token?): typed.apiCheck = .init(homeserver: homeserver, accessTokenFile: token)
            case (nil, nil): break
            default: throw TestFailure("synapse.homeserver and access_token_file go together")
            }
            configuration.synapse = typed
        }
        configuration.rotation = .init(
            interval: try duration(rotation.interval, .days(7)), margin: try duration(rotation.margin, .minutes(10)),
            stateDirectory: rotation.stateDirectory)
        switch role ?? "single" {
        case "single":
            configuration.role = .single
        case let role:
            let derivation = Configuration.Derivation(
                rootKeyFile: try rotation.rootKeyFile.orThrow("role \(role) without rotation.root_key_file"),
                previousRootKeyFile: rotation.previousRootKeyFile, epoch: try duration(rotation.epoch, .days(1)),
                keepPreviousEpochs: rotation.keepPreviousEpochs ?? 1)
            configuration.role = role == "turn" ? .turnHost(derivation) : .synapseHost(derivation)
        }
        configuration.consumers = consumers
        if let daemon {
            if let listen = daemon.listen {
                let colon = try listen.lastIndex(of: ":").orThrow("daemon.listen \(listen) is not HOST:PORT")
                configuration.daemon.listenHost = String(listen[..<colon])
                configuration.daemon.listenPort = try Int(listen[listen.index(after: colon)...]).orThrow(listen)
            }
            configuration.daemon.probeInterval = try duration(daemon.probeInterval, .minutes(5))
            configuration.daemon.retryInitial = try duration(daemon.retryInitial, .minutes(1))
            configuration.daemon.retryMax = try duration(daemon.retryMax, .hours(1))
            configuration.daemon.auditInterval = try duration(daemon.auditInterval, .days(1))
            configuration.daemon.calltestHomeserver = try daemon.calltestHomeserver.map {
                try HomeserverURL($0).orThrow("daemon.calltest_homeserver \($0)")
            }
        }
        return configuration
    }
}

extension Optional {
    fileprivate func orThrow(_ what: String) throws -> Wrapped {
        guard let self else { throw TestFailure(what) }
        return self
    }
}
