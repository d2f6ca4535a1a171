/// turnkeeper.yaml as the tests write it: the settings of each section, turned into text by ``render()`` alone.
/// When the typed configuration module has a renderer, ``render()`` is the one function to switch to it.
public struct TurnkeeperYAML: Sendable {
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

        public init() {}
    }

    public var role: String?
    public var synapse: Synapse?
    public var coturn: Coturn
    public var rotation: Rotation
    public var daemon: Daemon?
    /// YAML appended as it is: what a suite tests beyond the settings above.
    public var extra = ""

    public init(synapse: Synapse?, coturn: Coturn, rotation: Rotation) {
        self.synapse = synapse
        self.coturn = coturn
        self.rotation = rotation
    }

    /// The file's text: block style, two-space indents, one `key: value` a line.
    public func render() -> String {
        var lines: [String] = []
        /// `raw`: a number or a boolean, written as it is.
        func add(_ key: String, _ value: String?, indent: Int = 1, raw: Bool = false) {
            guard let value else { return }
            lines.append(String(repeating: "  ", count: indent) + "\(key): \(raw ? value : Self.scalar(value))")
        }
        func list(_ key: String, _ values: [String]?) {
            if let values {
                lines.append("  \(key): [\(values.map { Self.scalar($0, inList: true) }.joined(separator: ", "))]")
            }
        }
        if let role { lines.append("role: \(role)") }
        if let synapse {
            lines.append("synapse:")
            list("config", synapse.config)
            add("managed_file", synapse.managedFile)
            add("mode", synapse.mode)
            add("secret_file", synapse.secretFile)
            add("group", synapse.group)
            list("restart_command", synapse.restartCommand)
            add("health_url", synapse.healthURL)
            add("homeserver", synapse.homeserver)
            add("access_token_file", synapse.accessTokenFile)
            add("turn_allow_guests", synapse.turnAllowGuests.map { $0 ? "true" : "false" }, raw: true)
        }
        lines.append("coturn:")
        add("realm", coturn.realm)
        add("verify_uri", coturn.verifyURI)
        add("store", coturn.store)
        add("database", coturn.database)
        add("config_file", coturn.configFile)
        list("restart_command", coturn.restartCommand)
        add("restart_timeout", coturn.restartTimeout)
        if let redis = coturn.redis {
            lines.append("  redis:")
            add("host", redis.host, indent: 2)
            add("port", String(redis.port), indent: 2, raw: true)
            add("password_file", redis.passwordFile, indent: 2)
            add("timeout", redis.timeout, indent: 2)
        }
        if let postgres = coturn.postgres {
            lines.append("  postgres:")
            add("host", postgres.host, indent: 2)
            add("port", String(postgres.port), indent: 2, raw: true)
            add("database", postgres.database, indent: 2)
            add("user", postgres.user, indent: 2)
            add("password_file", postgres.passwordFile, indent: 2)
            add("timeout", postgres.timeout, indent: 2)
        }
        lines.append("rotation:")
        add("mode", rotation.mode)
        add("root_key_file", rotation.rootKeyFile)
        add("previous_root_key_file", rotation.previousRootKeyFile)
        add("epoch", rotation.epoch)
        add("interval", rotation.interval)
        add("margin", rotation.margin)
        add("state_directory", rotation.stateDirectory)
        if let daemon {
            lines.append("daemon:")
            add("listen", daemon.listen)
            add("probe_interval", daemon.probeInterval)
            add("retry_initial", daemon.retryInitial)
            add("retry_max", daemon.retryMax)
        }
        if !extra.isEmpty { lines.append(extra) }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Plain when YAML reads it back as the same string (paths, URIs, durations, names), quoted otherwise.
    /// In a flow list (`inList`), a colon is quoted too.
    static func scalar(_ text: String, inList: Bool = false) -> String {
        let plain = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:?=&+-@")
        let special = ["true", "false", "null", "yes", "no", "on", "off"].contains(text.lowercased())
        let isPlain =
            !text.isEmpty && !special && text.allSatisfy(plain.contains) && !text.allSatisfy(\.isNumber)
            && text.first != "-" && !(inList && text.contains(":"))
        if isPlain { return text }
        return "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            + "\""
    }
}
