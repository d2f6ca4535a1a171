public import TurnkeeperCredentials

/// turnkeeper's own configuration (default /etc/turnkeeper/turnkeeper.yaml), typed so that a combination
/// turnkeeper cannot act on cannot be represented: a single host has no root key, a config-file store has a
/// turnserver.conf, a path-mode Synapse has a secret file. See docs/configuration.md.
///
/// Read it with ``Configuration/load(_:)``; write it with ``Configuration/rendered(header:)``.
public struct Configuration: Sendable, Equatable {
    public var role: Role
    public var synapse: Synapse
    public var coturn: Coturn
    public var rotation: Rotation
    public var daemon: Daemon
    /// Apps besides Synapse that sign credentials with the same secret.
    public var consumers: [Consumer]
    /// Where it was read from (or will be written to): errors and suggested commands name it.
    public var path: String

    public static let defaultPath = "/etc/turnkeeper/turnkeeper.yaml"

    public init(
        role: Role = .single, synapse: Synapse = .init(), coturn: Coturn, rotation: Rotation = .init(),
        daemon: Daemon = .init(), consumers: [Consumer] = [], path: String = Configuration.defaultPath
    ) {
        self.role = role
        self.synapse = synapse
        self.coturn = coturn
        self.rotation = rotation
        self.daemon = daemon
        self.consumers = consumers
        self.path = path
    }

    /// Which host this is (docs/separate-turn-host.md).
    public enum Role: Sendable, Equatable {
        /// Synapse and coturn's store on one host; random secrets, rotated on `rotation.interval`.
        case single
        /// The TURN host of two: coturn holds the previous, current and next epochs' derived secrets.
        case turnHost(Derivation)
        /// The Synapse host of two: Synapse switches to each epoch's derived secret when it starts.
        case synapseHost(Derivation)

        public var derivation: Derivation? {
            switch self {
            case .single: nil
            case .turnHost(let derivation), .synapseHost(let derivation): derivation
            }
        }

        /// The word turnkeeper.yaml uses: single, turn or synapse.
        public var name: String {
            switch self {
            case .single: "single"
            case .turnHost: "turn"
            case .synapseHost: "synapse"
            }
        }

        /// Whether turnkeeper.yaml must have a synapse: section (all but the TURN host of two). What a host
        /// does with its role is decided in one place: TurnkeeperRotation's `Host`.
        public var hasSynapseSection: Bool {
            if case .turnHost = self { return false }
            return true
        }
    }

    /// Derived secrets, shared by the two hosts' roles.
    public struct Derivation: Sendable, Equatable {
        public var rootKeyFile: String
        /// During a root key rotation, on the TURN host: the old key, whose epoch secrets stay accepted too.
        public var previousRootKeyFile: String?
        public var epoch: SynapseDuration
        /// TURN host: how many epochs before the current one coturn keeps accepting. Each one more lets the
        /// Synapse host's turnkeeper be down an epoch longer without a credential refused.
        public var keepPreviousEpochs: Int
        /// TURN host: after it was away, how long an old epoch's secret stays once the epoch after it is in
        /// coturn, so the Synapse host (which moves on only to a secret coturn has) can catch up; nil: the
        /// TURN host's daemon.retry_max plus an epoch.
        public var catchUp: SynapseDuration?

        public init(
            rootKeyFile: String, previousRootKeyFile: String? = nil, epoch: SynapseDuration = .days(1),
            keepPreviousEpochs: Int = 1, catchUp: SynapseDuration? = nil
        ) {
            self.rootKeyFile = rootKeyFile
            self.previousRootKeyFile = previousRootKeyFile
            self.epoch = epoch
            self.keepPreviousEpochs = keepPreviousEpochs
            self.catchUp = catchUp
        }
    }

    public struct Synapse: Sendable, Equatable {
        /// What Synapse is started with (`-c` arguments): homeserver.yaml and conf.d.
        public var configPaths: [String]
        /// The conf.d file turnkeeper owns.
        public var managedFile: String
        public var secret: SecretPlacement
        /// The group Synapse runs as; managed files are 0640 with it.
        public var group: String
        /// argv, run without a shell and with an empty environment.
        public var restartCommand: [String]
        /// Polled until it answers 200 after a restart, such as http://127.0.0.1:8008/health.
        public var healthURL: String?
        /// TURN options turnkeeper writes into its managed file beside the secret, when set.
        public var turnURIs: [String]?
        public var turnUserLifetime: String?
        public var turnAllowGuests: Bool?
        /// After the switch, /voip/turnServer must hand out credentials signed with the new secret that coturn
        /// accepts.
        public var apiCheck: APICheck?

        public init(
            configPaths: [String] = ["/etc/matrix-synapse/homeserver.yaml", "/etc/matrix-synapse/conf.d"],
            managedFile: String = "/etc/matrix-synapse/conf.d/90-turnkeeper.yaml",
            secret: SecretPlacement = .inline,
            group: String = "matrix-synapse",
            restartCommand: [String] = ["systemctl", "restart", "matrix-synapse"],
            healthURL: String? = nil,
            turnURIs: [String]? = nil,
            turnUserLifetime: String? = nil,
            turnAllowGuests: Bool? = nil,
            apiCheck: APICheck? = nil
        ) {
            self.configPaths = configPaths
            self.managedFile = managedFile
            self.secret = secret
            self.group = group
            self.restartCommand = restartCommand
            self.healthURL = healthURL
            self.turnURIs = turnURIs
            self.turnUserLifetime = turnUserLifetime
            self.turnAllowGuests = turnAllowGuests
            self.apiCheck = apiCheck
        }

        /// Where Synapse's secret is written.
        public enum SecretPlacement: Sendable, Equatable {
            /// `turn_shared_secret` in the managed file.
            case inline
            /// `turn_shared_secret_path` in the managed file, naming this secret file.
            case file(String)

            public var secretFile: String? {
                if case .file(let path) = self { return path }
                return nil
            }
        }

        /// A Matrix account's access token, to ask Synapse what it hands out.
        public struct APICheck: Sendable, Equatable {
            public var homeserver: String
            public var accessTokenFile: String

            public init(homeserver: String, accessTokenFile: String) {
                self.homeserver = homeserver
                self.accessTokenFile = accessTokenFile
            }
        }
    }

    public struct Coturn: Sendable, Equatable {
        public var realm: String
        /// Where a new secret is verified with a real allocation before Synapse switches to it.
        public var verifyURI: String
        public var store: Store
        /// turnserver.conf, when set: read by `check`, and the store itself for ``Store/config(_:)``.
        public var configFile: String?

        public init(realm: String, verifyURI: String, store: Store = .sqlite(), configFile: String? = nil) {
            self.realm = realm
            self.verifyURI = verifyURI
            self.store = store
            self.configFile = configFile
        }

        /// Where coturn reads its secrets from, each with the settings only it has.
        public enum Store: Sendable, Equatable {
            /// coturn's own SQLite user database.
            case sqlite(database: String = "/var/lib/turn/turndb")
            /// static-auth-secret lines in turnserver.conf (coturn.config_file), read only at coturn's start.
            case config(ConfigFile)
            /// A Redis user database shared by a fleet of coturn hosts (`redis-userdb`).
            case redis(Redis)
            /// A PostgreSQL user database shared by a fleet of coturn hosts (`psql-userdb`).
            case postgres(Postgres)

            /// turnserver.conf is the store (coturn then reads it only at start).
            public var isConfigFile: Bool {
                if case .config = self { return true }
                return false
            }

            /// Debian's coturn opens this one when turnserver.conf names no userdb.
            public static let defaultDatabase = "/var/lib/turn/turndb"

            /// The word turnkeeper.yaml uses.
            public var name: String {
                switch self {
                case .sqlite: "sqlite"
                case .config: "config"
                case .redis: "redis"
                case .postgres: "postgres"
                }
            }

            /// What messages call it: "SQLite", "Redis", "PostgreSQL", "turnserver.conf".
            public var label: String {
                switch self {
                case .sqlite: "SQLite"
                case .config: "turnserver.conf"
                case .redis: "Redis"
                case .postgres: "PostgreSQL"
                }
            }
        }

        /// store config: the restart that makes coturn read turnserver.conf again.
        public struct ConfigFile: Sendable, Equatable {
            public var restartCommand: [String]
            /// How long the restart command may run, and then how long coturn has to answer with the new file.
            public var restartTimeout: SynapseDuration

            public init(
                restartCommand: [String] = ["systemctl", "restart", "coturn"],
                restartTimeout: SynapseDuration = .seconds(30)
            ) {
                self.restartCommand = restartCommand
                self.restartTimeout = restartTimeout
            }
        }

        public struct Redis: Sendable, Equatable {
            public var host: String
            public var port: Int
            public var database: Int
            public var username: String?
            /// Never the password itself in turnkeeper.yaml.
            public var passwordFile: String?
            public var timeout: SynapseDuration

            public init(
                host: String = "127.0.0.1", port: Int = 6379, database: Int = 0, username: String? = nil,
                passwordFile: String? = nil, timeout: SynapseDuration = .seconds(5)
            ) {
                self.host = host
                self.port = port
                self.database = database
                self.username = username
                self.passwordFile = passwordFile
                self.timeout = timeout
            }
        }

        public struct Postgres: Sendable, Equatable {
            public var host: String
            public var port: Int
            public var database: String
            public var user: String
            public var passwordFile: String?
            /// TLS required; the default unless the host is loopback.
            public var tls: Bool
            /// The CA that signed the server's certificate, when not one of the system's.
            public var caFile: String?
            public var timeout: SynapseDuration

            public init(
                host: String = "127.0.0.1", port: Int = 5432, database: String = "coturn", user: String = "coturn",
                passwordFile: String? = nil, tls: Bool? = nil, caFile: String? = nil,
                timeout: SynapseDuration = .seconds(5)
            ) {
                self.caFile = caFile
                self.host = host
                self.port = port
                self.database = database
                self.user = user
                self.passwordFile = passwordFile
                self.tls = tls ?? !Configuration.isLoopback(host)
                self.timeout = timeout
            }
        }
    }

    public struct Rotation: Sendable, Equatable {
        public var interval: SynapseDuration
        /// Added to Synapse's credential lifetime before an old secret is retired.
        public var margin: SynapseDuration
        public var stateDirectory: String

        public init(
            interval: SynapseDuration = .days(7), margin: SynapseDuration = .minutes(10),
            stateDirectory: String = "/var/lib/turnkeeper"
        ) {
            self.interval = interval
            self.margin = margin
            self.stateDirectory = stateDirectory
        }
    }

    /// `turnkeeper run`: its listener, its probes and how it retries.
    public struct Daemon: Sendable, Equatable {
        /// host:port of the health and metrics listener; loopback unless told otherwise.
        public var listenHost: String
        public var listenPort: Int
        public var probeInterval: SynapseDuration
        /// What the daemon probes; nil: Synapse's turn_uris, or else coturn.verify_uri.
        public var probeURIs: [String]?
        /// For turns: URIs signed by a private CA.
        public var probeCAFile: String?
        /// A failed rotation or retirement is retried after `retryInitial`, doubling up to `retryMax`.
        public var retryInitial: SynapseDuration
        public var retryMax: SynapseDuration
        /// How often `run` audits the TURN URIs it probes (`turnkeeper audit`, without a reflector).
        public var auditInterval: SynapseDuration
        /// Set, the listener also serves the call test page at /calltest/, pre-filled with this homeserver (the
        /// address users' Matrix apps use) and allowed to talk to it alone.
        public var calltestHomeserver: HomeserverURL?

        public init(
            listenHost: String = "127.0.0.1", listenPort: Int = 9478, probeInterval: SynapseDuration = .minutes(5),
            probeURIs: [String]? = nil, probeCAFile: String? = nil, retryInitial: SynapseDuration = .minutes(1),
            retryMax: SynapseDuration = .hours(1), calltestHomeserver: HomeserverURL? = nil,
            auditInterval: SynapseDuration = .days(1)
        ) {
            self.auditInterval = auditInterval
            self.calltestHomeserver = calltestHomeserver
            self.listenHost = listenHost
            self.listenPort = listenPort
            self.probeInterval = probeInterval
            self.probeURIs = probeURIs
            self.probeCAFile = probeCAFile
            self.retryInitial = retryInitial
            self.retryMax = retryMax
        }
    }
}

extension Configuration {
    /// Shorthand for ``Role/derivation``.
    public var derivation: Derivation? { role.derivation }

    /// turnserver.conf as turnkeeper reads it when coturn.config_file is not set.
    public static let defaultTurnserverConf = "/etc/turnserver.conf"

    /// store config: present while turnserver.conf has changed and coturn is not yet proven to run with it.
    public var coturnRestartOwedMarker: String { rotation.stateDirectory + "/coturn-restart-owed" }

    /// A turnkeeper command line to suggest, with `--config` when this is not the default file.
    public func command(_ arguments: String) -> String {
        path == Configuration.defaultPath ? "turnkeeper \(arguments)" : "turnkeeper \(arguments) --config \(path)"
    }

    /// Why credentials of `lifetime` would be refused while still valid under this schedule, or nil.
    ///
    /// Derived secrets: epoch e's secret leaves coturn when epoch e+2 starts, so a credential minted at the very end
    /// of epoch e must expire within one epoch. What the lifetime leaves of the epoch is the clock skew the two
    /// hosts may have (docs/separate-turn-host.md). A single host retires each old secret on its own clock,
    /// however rotations overlap.
    /// `name`: the option that sets the lifetime, for the message.
    public func scheduleProblem(lifetime: SynapseDuration, name: String = "turn_user_lifetime") -> String? {
        guard let derivation else { return nil }
        let life = lifetime.seconds
        let epoch = derivation.epoch.seconds
        guard life < epoch else {
            return "\(name) (\(life) s) is not shorter than rotation.epoch (\(epoch) s): a credential "
                + "minted at the end of an epoch would outlive its secret on the TURN host and be refused. Make "
                + "the epoch at least twice the lifetime (\(2 * life) s), or shorten \(name)"
        }
        return nil
    }

    /// Whether `host` names this machine's loopback: all of 127.0.0.0/8, ::1, localhost.
    public static func isLoopback(_ host: String) -> Bool {
        if host == "localhost" || host == "::1" || host == "[::1]" { return true }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { UInt8($0) != nil }
    }

    /// "127.0.0.1:9478", "[::1]:9478" or "localhost:9478".
    static func hostAndPort(_ text: String) -> (String, Int)? {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                return nil
            }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":"), !text[..<colon].contains(":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard !host.isEmpty, let port = Int(portText), (0...65535).contains(port) else { return nil }
        return (String(host), port)
    }
}
