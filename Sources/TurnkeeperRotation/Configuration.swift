import TurnkeeperCore
public import TurnkeeperCredentials
public import TurnkeeperStores

/// turnkeeper's own configuration (default /etc/turnkeeper/turnkeeper.yaml). See docs/configuration.md.
public struct Configuration: Sendable {
    public struct Synapse: Sendable {
        /// What Synapse is started with (`-c` arguments): homeserver.yaml and conf.d.
        public var configPaths: [String]
        /// The conf.d file turnkeeper owns.
        public var managedFile: String
        public var mode: SynapseSecretStore.Mode
        /// The secret file, in path mode.
        public var secretFile: String?
        /// The group Synapse runs as; managed files are 0640 with it.
        public var group: String?
        /// argv, run without a shell and with an empty environment.
        public var restartCommand: [String]
        /// Polled until it answers 200 after a restart, such as http://127.0.0.1:8008/health.
        public var healthURL: String?
        /// TURN options turnkeeper writes into its managed file beside the secret, when set.
        public var turnURIs: [String]?
        public var turnUserLifetime: String?
        public var turnAllowGuests: Bool?
        /// With an access token: after the switch, /voip/turnServer must hand out credentials signed with the
        /// new secret that coturn accepts.
        public var homeserver: String?
        public var accessTokenFile: String?

        /// The managed options rendered as YAML values.
        var managedOptions: [(key: String, yaml: String)] {
            var options: [(key: String, yaml: String)] = []
            func quoted(_ text: String) -> String {
                "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
                    + "\""
            }
            if let turnURIs { options.append(("turn_uris", "[" + turnURIs.map(quoted).joined(separator: ", ") + "]")) }
            if let turnUserLifetime { options.append(("turn_user_lifetime", quoted(turnUserLifetime))) }
            if let turnAllowGuests { options.append(("turn_allow_guests", turnAllowGuests ? "true" : "false")) }
            return options
        }
    }

    public struct Coturn: Sendable {
        public enum Store: String, Sendable {
            case sqlite
            case config
            /// A Redis user database shared by a fleet of coturn hosts (`redis-userdb`).
            case redis
            /// A PostgreSQL user database shared by a fleet of coturn hosts (`psql-userdb`).
            case postgres
        }

        public var realm: String
        /// Where a new secret is verified with a real allocation before Synapse switches to it.
        public var verifyURI: String
        public var store: Store
        public var database: String
        public var configFile: String?
        public var restartCommand: [String]?
        /// store config: how long the restart command may run, and then how long coturn has to answer with
        /// the new turnserver.conf in force.
        public var restartTimeout: SynapseDuration
        /// store redis: where, and the password file (never the password itself in turnkeeper.yaml).
        public var redis: Redis?
        public var postgres: Postgres?
    }

    public struct Postgres: Sendable {
        public var host: String
        public var port: Int
        public var database: String
        public var user: String
        public var passwordFile: String?
        /// TLS required; the default unless the host is loopback.
        public var tls: Bool
        public var timeout: SynapseDuration
    }

    public struct Redis: Sendable {
        public var host: String
        public var port: Int
        public var database: Int
        public var username: String?
        public var passwordFile: String?
        public var timeout: SynapseDuration
    }

    public struct Rotation: Sendable {
        public var interval: SynapseDuration
        /// Added to Synapse's credential lifetime before an old secret is retired.
        public var margin: SynapseDuration
        public var stateDirectory: String
    }

    /// `turnkeeper run`: its listener, its probes and how it retries.
    public struct Daemon: Sendable {
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
    }

    /// Which host this is. `single`: Synapse and coturn's store on one host, random secrets. `turn` and
    /// `synapse`: two hosts deriving each epoch's secret from a shared root key (docs/separate-turn-host.md).
    public enum Role: String, Sendable {
        case single
        case turn
        case synapse
    }

    /// Derived secrets, for the two-host roles.
    public struct Derivation: Sendable {
        public var rootKeyFile: String
        /// During a root key rotation, on the TURN host: the old key, whose epoch secrets stay accepted too.
        public var previousRootKeyFile: String?
        public var epoch: SynapseDuration
    }

    public var role: Role
    public var derivation: Derivation?
    public var synapse: Synapse
    public var coturn: Coturn
    public var rotation: Rotation
    public var daemon: Daemon
    public let path: String

    public static let defaultPath = "/etc/turnkeeper/turnkeeper.yaml"

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
