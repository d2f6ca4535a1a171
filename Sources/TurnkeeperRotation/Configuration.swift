public import TurnkeeperCore
public import TurnkeeperCredentials
public import TurnkeeperStores
import Yams

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

    public static func load(_ path: String) throws(TurnkeeperError) -> Configuration {
        let text = String(decoding: try FileContents.read(path, limit: 1 << 20).bytes, as: UTF8.self)
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw TurnkeeperError(.unreadableFile, "\(path): \(Self.describe(error)); fix the YAML.")
        } catch {
            throw TurnkeeperError(.unreadableFile, "\(path): not valid YAML: \(error).")
        }
        guard let root, root.mapping != nil else {
            throw TurnkeeperError(.unreadableFile, "\(path) is empty or not a mapping; see docs/configuration.md.")
        }
        let reader = Reader(path: path)
        let roleText = try reader.string(root, "role", default: "single")
        guard let role = Role(rawValue: roleText) else {
            throw reader.error(root["role"], "role is \"\(roleText)\"; it must be single, turn or synapse")
        }
        // The TURN host of a two-host setup has no Synapse to manage.
        let synapse: Node =
            role == .turn
            ? (try reader.optionalSection(root, "synapse") ?? Node.mapping(Node.Mapping([])))
            : try reader.section(root, "synapse")
        let coturn = try reader.section(root, "coturn")
        let rotation = try reader.optionalSection(root, "rotation")
        let rotationMode = try reader.string(rotation, "mode", default: role == .single ? "random" : "derived")
        guard rotationMode == (role == .single ? "random" : "derived") else {
            throw reader.error(
                rotation?["mode"],
                role == .single
                    ? "rotation.mode derived needs role turn or synapse; a single host keeps random secrets"
                    : "role \(roleText) derives its secrets, so rotation.mode must be derived")
        }
        var derivation: Derivation?
        if role != .single {
            guard let keyFile = try reader.optionalString(rotation, "root_key_file") else {
                throw reader.error(
                    rotation ?? root, "role \(roleText) needs rotation.root_key_file, the key both hosts share")
            }
            derivation = Derivation(
                rootKeyFile: keyFile,
                previousRootKeyFile: try reader.optionalString(rotation, "previous_root_key_file"),
                epoch: try reader.duration(rotation, "epoch", default: "1d"))
        }
        let daemon = try reader.optionalSection(root, "daemon")
        let listen = try reader.string(daemon, "listen", default: "127.0.0.1:9478")
        guard let (listenHost, listenPort) = Self.hostAndPort(listen) else {
            throw reader.error(
                daemon?["listen"],
                "daemon.listen is \"\(listen)\"; it must be HOST:PORT, such as 127.0.0.1:9478 or [::1]:9478")
        }

        let mode = try reader.string(synapse, "mode", default: "inline")
        guard let parsedMode = SynapseSecretStore.Mode(rawValue: mode) else {
            throw reader.error(synapse["mode"], "synapse.mode is \"\(mode)\"; it must be inline or path")
        }
        let store = try reader.string(coturn, "store", default: "sqlite")
        guard let parsedStore = Coturn.Store(rawValue: store) else {
            throw reader.error(
                coturn["store"], "coturn.store is \"\(store)\"; it must be sqlite, config, redis or postgres")
        }
        let configuration = Configuration(
            role: role,
            derivation: derivation,
            synapse: Synapse(
                configPaths: try reader.strings(
                    synapse, "config", default: ["/etc/matrix-synapse/homeserver.yaml", "/etc/matrix-synapse/conf.d"]),
                managedFile: try reader.string(
                    synapse, "managed_file", default: "/etc/matrix-synapse/conf.d/90-turnkeeper.yaml"),
                mode: parsedMode,
                secretFile: try reader.optionalString(synapse, "secret_file"),
                group: try reader.optionalString(synapse, "group") ?? "matrix-synapse",
                restartCommand: try reader.strings(
                    synapse, "restart_command", default: ["systemctl", "restart", "matrix-synapse"]),
                healthURL: try reader.optionalString(synapse, "health_url"),
                turnURIs: try reader.optionalStrings(synapse, "turn_uris"),
                turnUserLifetime: try reader.optionalDuration(synapse, "turn_user_lifetime"),
                turnAllowGuests: try reader.optionalBool(synapse, "turn_allow_guests"),
                homeserver: try reader.optionalString(synapse, "homeserver"),
                accessTokenFile: try reader.optionalString(synapse, "access_token_file")
            ),
            coturn: Coturn(
                realm: try reader.requiredString(coturn, "realm"),
                verifyURI: try reader.requiredString(coturn, "verify_uri"),
                store: parsedStore,
                database: try reader.string(coturn, "database", default: "/var/lib/turn/turndb"),
                configFile: try reader.optionalString(coturn, "config_file"),
                restartCommand: try reader.optionalStrings(coturn, "restart_command"),
                restartTimeout: try reader.duration(coturn, "restart_timeout", default: "30s"),
                redis: try reader.optionalSection(coturn, "redis").map { (redis) throws(TurnkeeperError) in
                    let port = try reader.string(redis, "port", default: "6379")
                    let database = try reader.string(redis, "database", default: "0")
                    guard let portNumber = Int(port), (1...65535).contains(portNumber) else {
                        throw reader.error(redis["port"], "coturn.redis.port must be 1 to 65535")
                    }
                    guard let databaseNumber = Int(database), databaseNumber >= 0 else {
                        throw reader.error(redis["database"], "coturn.redis.database must be a number from 0")
                    }
                    return Redis(
                        host: try reader.string(redis, "host", default: "127.0.0.1"), port: portNumber,
                        database: databaseNumber, username: try reader.optionalString(redis, "username"),
                        passwordFile: try reader.optionalString(redis, "password_file"),
                        timeout: try reader.duration(redis, "timeout", default: "5s"))
                },
                postgres: try reader.optionalSection(coturn, "postgres").map { (postgres) throws(TurnkeeperError) in
                    let host = try reader.string(postgres, "host", default: "127.0.0.1")
                    let port = try reader.string(postgres, "port", default: "5432")
                    guard let portNumber = Int(port), (1...65535).contains(portNumber) else {
                        throw reader.error(postgres["port"], "coturn.postgres.port must be 1 to 65535")
                    }
                    let loopback = ["127.0.0.1", "::1", "localhost"].contains(host)
                    return Postgres(
                        host: host, port: portNumber,
                        database: try reader.string(postgres, "database", default: "coturn"),
                        user: try reader.string(postgres, "user", default: "coturn"),
                        passwordFile: try reader.optionalString(postgres, "password_file"),
                        tls: try reader.optionalBool(postgres, "tls") ?? !loopback,
                        timeout: try reader.duration(postgres, "timeout", default: "5s"))
                }
            ),
            rotation: Rotation(
                interval: try reader.duration(rotation, "interval", default: "7d"),
                margin: try reader.duration(rotation, "margin", default: "10m"),
                stateDirectory: try reader.string(rotation, "state_directory", default: "/var/lib/turnkeeper")
            ),
            daemon: Daemon(
                listenHost: listenHost,
                listenPort: listenPort,
                probeInterval: try reader.duration(daemon, "probe_interval", default: "5m"),
                probeURIs: try reader.optionalStrings(daemon, "probe_uris"),
                probeCAFile: try reader.optionalString(daemon, "probe_ca_file"),
                retryInitial: try reader.duration(daemon, "retry_initial", default: "1m"),
                retryMax: try reader.duration(daemon, "retry_max", default: "1h")
            ),
            path: path
        )
        if configuration.synapse.mode == .path && configuration.synapse.secretFile == nil {
            throw reader.error(
                synapse["mode"], "synapse.mode is path, so synapse.secret_file must name the secret file")
        }
        if (configuration.synapse.homeserver == nil) != (configuration.synapse.accessTokenFile == nil) {
            throw reader.error(synapse, "synapse.homeserver and synapse.access_token_file go together")
        }
        if configuration.coturn.store == .redis && configuration.coturn.redis == nil {
            throw reader.error(
                coturn["store"], "coturn.store is redis, so a coturn.redis section must say where (host, port)")
        }
        if configuration.coturn.store == .postgres && configuration.coturn.postgres == nil {
            throw reader.error(
                coturn["store"],
                "coturn.store is postgres, so a coturn.postgres section must say where (host, database)")
        }
        if configuration.coturn.store == .config && configuration.coturn.configFile == nil {
            throw reader.error(
                coturn["store"], "coturn.store is config, so coturn.config_file must name turnserver.conf")
        }
        return configuration
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

    static func describe(_ error: YamlError) -> String {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _):
            "line \(mark.line), column \(mark.column): \(problem)"
        default:
            "\(error)"
        }
    }
}

/// Typed reads from the YAML tree, each error naming the file and the line.
private struct Reader {
    let path: String

    func error(_ node: Node?, _ message: String) -> TurnkeeperError {
        let line = node?.mark.map { ", line \($0.line)" } ?? ""
        return TurnkeeperError(.unreadableFile, "\(path)\(line): \(message). See docs/configuration.md.")
    }

    func section(_ root: Node, _ key: String) throws(TurnkeeperError) -> Node {
        guard let node = root[key] else { throw error(root, "the \(key): section is missing") }
        guard node.mapping != nil else { throw error(node, "\(key): must be a mapping of options") }
        return node
    }

    func optionalSection(_ root: Node, _ key: String) throws(TurnkeeperError) -> Node? {
        guard root[key] != nil else { return nil }
        return try section(root, key)
    }

    func optionalString(_ node: Node?, _ key: String) throws(TurnkeeperError) -> String? {
        guard let value = node?[key] else { return nil }
        guard let scalar = value.scalar else { throw error(value, "\(key) must be a single value") }
        return scalar.string
    }

    func string(_ node: Node?, _ key: String, default fallback: String) throws(TurnkeeperError) -> String {
        try optionalString(node, key) ?? fallback
    }

    func requiredString(_ node: Node, _ key: String) throws(TurnkeeperError) -> String {
        guard let value = try optionalString(node, key), !value.isEmpty else { throw error(node, "\(key) is required") }
        return value
    }

    func optionalStrings(_ node: Node?, _ key: String) throws(TurnkeeperError) -> [String]? {
        guard let value = node?[key] else { return nil }
        guard let sequence = value.sequence, sequence.allSatisfy({ $0.scalar != nil }) else {
            throw error(value, "\(key) must be a list, such as [systemctl, restart, matrix-synapse]")
        }
        return sequence.compactMap(\.string)
    }

    func strings(_ node: Node?, _ key: String, default fallback: [String]) throws(TurnkeeperError) -> [String] {
        try optionalStrings(node, key) ?? fallback
    }

    /// A duration kept as text (to be written into Synapse's config), checked with Synapse's rules.
    func optionalDuration(_ node: Node?, _ key: String) throws(TurnkeeperError) -> String? {
        guard let text = try optionalString(node, key) else { return nil }
        do {
            _ = try SynapseDuration(parsing: text, source: key)
        } catch let failure {
            throw error(node?[key], failure.reason)
        }
        return text
    }

    func optionalBool(_ node: Node?, _ key: String) throws(TurnkeeperError) -> Bool? {
        guard let text = try optionalString(node, key) else { return nil }
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw error(node?[key], "\(key) must be true or false")
        }
    }

    func duration(_ node: Node?, _ key: String, default fallback: String) throws(TurnkeeperError) -> SynapseDuration {
        let text = try string(node, key, default: fallback)
        do {
            return try SynapseDuration(parsing: text, source: key)
        } catch let failure {
            throw error(node?[key], failure.reason)
        }
    }
}
