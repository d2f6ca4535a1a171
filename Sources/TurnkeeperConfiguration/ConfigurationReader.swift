import Glibc
public import TurnkeeperCore
import TurnkeeperCredentials
import TurnkeeperURI
import TurnkeeperYAML

extension Configuration {
    /// The keys each section may hold. Anything else is a typo that would silently change behaviour.
    static let schema: [String: [String]] = [
        "": ["role", "synapse", "coturn", "rotation", "daemon", "consumers"],
        "consumers.prosody": [
            "name", "kind", "config_file", "prosodyctl", "hosts", "group", "turn_host", "turn_port", "tls_port", "tcp",
            "turn_user", "credential_lifetime",
        ],
        "consumers.file": [
            "name", "kind", "path", "template", "format", "group", "mode", "command", "command_timeout",
            "verify_command", "verify_url", "credential_lifetime",
        ],
        "synapse": [
            "config", "managed_file", "mode", "secret_file", "group", "restart_command", "health_url", "turn_uris",
            "turn_user_lifetime", "turn_allow_guests", "homeserver", "access_token_file",
        ],
        "coturn": [
            "realm", "verify_uri", "store", "database", "config_file", "restart_command", "restart_timeout", "redis",
            "postgres",
        ],
        "coturn.redis": ["host", "port", "database", "username", "password_file", "timeout"],
        "coturn.postgres": ["host", "port", "database", "user", "password_file", "tls", "ca_file", "timeout"],
        "rotation": [
            "mode", "interval", "margin", "state_directory", "root_key_file", "previous_root_key_file", "epoch",
            "keep_previous_epochs", "catch_up",
        ],
        "daemon": [
            "listen", "probe_interval", "probe_uris", "probe_ca_file", "retry_initial", "retry_max",
            "calltest_homeserver", "audit_interval",
        ],
    ]

    /// Reads and checks turnkeeper.yaml whole: every error names the file, the line and the key, never a value.
    /// Parsing is bounded (size, depth, alias expansion), so no file can make it run long; callers on the
    /// cooperative pool still run it on a thread of their own.
    public static func load(_ path: String) throws(TurnkeeperError) -> Configuration {
        let file = try FileContents.read(path, limit: 1 << 20)
        // Whoever may write this file chooses the commands turnkeeper runs as root.
        if file.ownerID != 0 && file.ownerID != geteuid() {
            throw TurnkeeperError(
                .invalidConfiguration,
                "\(path) is owned by uid \(file.ownerID), not root: whoever owns it chooses the commands turnkeeper "
                    + "runs as root. Run `chown root: \(path)`.")
        }
        if file.permissions & 0o022 != 0 {
            throw TurnkeeperError(
                .invalidConfiguration,
                "\(path) may be written by users other than its owner (mode \(String(file.permissions, radix: 8))): "
                    + "they would choose the commands turnkeeper runs as root. Run `chmod go-w \(path)`.")
        }
        let root: YAMLNode?
        do {
            root = try YAMLReader.parse(file.bytes, limits: .init(maximumBytes: 1 << 20, maximumExpandedNodes: 10_000))
        } catch {
            throw TurnkeeperError(.invalidConfiguration, "\(path), \(error.located); fix the YAML.")
        }
        guard let root, root.mapping != nil else {
            throw TurnkeeperError(
                .invalidConfiguration, "\(path) is empty or not a mapping; see docs/configuration.md.")
        }
        return try ConfigurationReader(path: path).configuration(root)
    }
}

/// Typed reads from the YAML tree, each error naming the file, the line and the key.
private struct ConfigurationReader {
    let path: String

    func configuration(_ root: YAMLNode) throws(TurnkeeperError) -> Configuration {
        try checkKeys(root, section: "")
        let rotation = try optionalSection(root, "rotation")
        let role = try roleSection(root, rotation: rotation)
        // The TURN host of a two-host setup has no Synapse to manage.
        let synapse = role.hasSynapseSection ? try section(root, "synapse") : try optionalSection(root, "synapse")
        let configuration = Configuration(
            role: role,
            synapse: try synapseSection(synapse, role: role),
            coturn: try coturnSection(try section(root, "coturn")),
            rotation: try rotationSection(rotation),
            daemon: try daemonSection(try optionalSection(root, "daemon")),
            consumers: try consumersSection(root["consumers"]),
            path: path
        )
        try checkSchedule(configuration, rotation: rotation, synapse: synapse)
        try checkConsumerSchedule(configuration, root["consumers"])
        return configuration
    }

    /// `role` with rotation.mode and the derivation it needs.
    private func roleSection(_ root: YAMLNode, rotation: YAMLNode?) throws(TurnkeeperError) -> Configuration.Role {
        let roleText = try string(root, "role", default: "single")
        guard ["single", "turn", "synapse"].contains(roleText) else {
            throw error(root["role"], "role must be single, turn or synapse")
        }
        let single = roleText == "single"
        let mode = try string(rotation, "mode", default: single ? "random" : "derived")
        guard mode == (single ? "random" : "derived") else {
            throw error(
                rotation?["mode"],
                single
                    ? "rotation.mode derived needs role turn or synapse; a single host keeps random secrets"
                    : "role \(roleText) derives its secrets, so rotation.mode must be derived")
        }
        if single {
            for key in ["root_key_file", "previous_root_key_file", "epoch", "keep_previous_epochs", "catch_up"]
            where rotation?[key] != nil {
                throw error(rotation?[key], "rotation.\(key) is only read by role turn or synapse (derived secrets)")
            }
            return .single
        }
        guard let keyFile = try optionalPath(rotation, "root_key_file") else {
            throw error(rotation ?? root, "role \(roleText) needs rotation.root_key_file, the key both hosts share")
        }
        if roleText == "synapse" {
            for key in ["keep_previous_epochs", "catch_up"] where rotation?[key] != nil {
                throw error(
                    rotation?[key], "rotation.\(key) is only read by role turn (the host that writes coturn's store)")
            }
        }
        let derivation = Configuration.Derivation(
            rootKeyFile: keyFile,
            previousRootKeyFile: try optionalPath(rotation, "previous_root_key_file"),
            epoch: try duration(rotation, "epoch", default: "1d"),
            keepPreviousEpochs: try integer(rotation, "keep_previous_epochs", default: 1, in: 1...30),
            catchUp: try optionalString(rotation, "catch_up") == nil
                ? nil : try duration(rotation, "catch_up", default: "1h"))
        if let catchUp = derivation.catchUp, catchUp.seconds < derivation.epoch.seconds {
            throw error(
                rotation?["catch_up"],
                "rotation.catch_up (\(catchUp.seconds) s) is shorter than rotation.epoch (\(derivation.epoch.seconds) s): "
                    + "credentials Synapse handed out just before it caught up live up to an epoch, and would be refused"
            )
        }
        return roleText == "turn" ? .turnHost(derivation) : .synapseHost(derivation)
    }

    private func rotationSection(_ node: YAMLNode?) throws(TurnkeeperError) -> Configuration.Rotation {
        Configuration.Rotation(
            interval: try duration(node, "interval", default: "7d"),
            margin: try duration(node, "margin", default: "10m"),
            stateDirectory: try path(node, "state_directory", default: "/var/lib/turnkeeper")
        )
    }

    private func synapseSection(_ node: YAMLNode?, role: Configuration.Role) throws(TurnkeeperError)
        -> Configuration.Synapse
    {
        let modeText = try string(node, "mode", default: "inline")
        guard modeText == "inline" || modeText == "path" else {
            throw error(node?["mode"], "synapse.mode must be inline or path")
        }
        let secretFile = try optionalPath(node, "secret_file")
        let placement: Configuration.Synapse.SecretPlacement
        switch (modeText, secretFile) {
        case ("path", let file?): placement = .file(file)
        case ("path", nil):
            throw error(node?["mode"], "synapse.mode is path, so synapse.secret_file must name the secret file")
        case (_, nil): placement = .inline
        case (_, .some):
            throw error(
                node?["secret_file"],
                "synapse.secret_file is only read in path mode; set synapse.mode: path, or remove secret_file")
        }
        let group = try optionalString(node, "group") ?? "matrix-synapse"
        // The TURN host writes nothing for Synapse, so its group need not exist there.
        if role.hasSynapseSection && GroupID.lookup(group) == nil {
            throw error(
                node?["group"] ?? node,
                "synapse.group \(quoted(group)) does not exist on this host; name the group Synapse runs as "
                    + "(Debian: matrix-synapse)")
        }
        let homeserver = try optionalString(node, "homeserver")
        let accessTokenFile = try optionalPath(node, "access_token_file")
        var apiCheck: Configuration.Synapse.APICheck?
        switch (homeserver, accessTokenFile) {
        case (nil, nil): break
        case (let homeserver?, let tokenFile?):
            apiCheck = .init(
                homeserver: try url(homeserver, node?["homeserver"], key: "synapse.homeserver"),
                accessTokenFile: tokenFile)
        default: throw error(node, "synapse.homeserver and synapse.access_token_file go together")
        }
        let turnURIs = try optionalStrings(node, "turn_uris")
        for uri in turnURIs ?? [] where (try? TURNURI(uri)) == nil {
            throw error(
                node?["turn_uris"], "synapse.turn_uris holds an entry that is not a TURN URI, \(Self.uriExample)")
        }
        return Configuration.Synapse(
            configPaths: try paths(
                node, "config", default: ["/etc/matrix-synapse/homeserver.yaml", "/etc/matrix-synapse/conf.d"]),
            managedFile: try path(node, "managed_file", default: "/etc/matrix-synapse/conf.d/90-turnkeeper.yaml"),
            secret: placement,
            group: group,
            restartCommand: try command(node, "restart_command", default: ["systemctl", "restart", "matrix-synapse"]),
            healthURL: try optionalURL(node, "health_url"),
            turnURIs: turnURIs,
            turnUserLifetime: try optionalDuration(node, "turn_user_lifetime"),
            turnAllowGuests: try optionalBool(node, "turn_allow_guests"),
            apiCheck: apiCheck
        )
    }

    private func coturnSection(_ node: YAMLNode) throws(TurnkeeperError) -> Configuration.Coturn {
        let realm = try requiredString(node, "realm")
        // coturn keeps realms in varchar(127) and compares them byte for byte.
        guard realm.utf8.count <= 127, realm.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value != 0x7F }) else {
            throw error(node["realm"], "coturn.realm must be up to 127 bytes with no spaces or control characters")
        }
        let verifyURI = try requiredString(node, "verify_uri")
        guard (try? TURNURI(verifyURI))?.isTURN == true else {
            throw error(node["verify_uri"], "coturn.verify_uri must be a TURN URI, \(Self.uriExample)")
        }
        let configFile = try optionalPath(node, "config_file")
        return Configuration.Coturn(
            realm: realm, verifyURI: verifyURI, store: try store(node, configFile: configFile), configFile: configFile)
    }

    /// coturn.store and the settings of that store; a setting of another store is refused, not ignored.
    private func store(_ node: YAMLNode, configFile: String?) throws(TurnkeeperError) -> Configuration.Coturn.Store {
        let name = try string(node, "store", default: "sqlite")
        let owners = [
            "database": "sqlite", "restart_command": "config", "restart_timeout": "config", "redis": "redis",
            "postgres": "postgres",
        ]
        guard Set(owners.values).contains(name) else {
            throw error(node["store"], "coturn.store must be sqlite, config, redis or postgres")
        }
        for (key, owner) in owners.sorted(by: { $0.key < $1.key }) where owner != name && node[key] != nil {
            throw error(
                node[key], "coturn.\(key) is only read with coturn.store: \(owner) (this one is \(name)); remove it")
        }
        switch name {
        case "sqlite":
            return .sqlite(database: try path(node, "database", default: "/var/lib/turn/turndb"))
        case "config":
            guard configFile != nil else {
                throw error(node["store"], "coturn.store is config, so coturn.config_file must name turnserver.conf")
            }
            return .config(
                .init(
                    restartCommand: try command(node, "restart_command", default: ["systemctl", "restart", "coturn"]),
                    restartTimeout: try duration(node, "restart_timeout", default: "30s")))
        case "redis":
            guard let redis = try optionalSection(node, "redis", section: "coturn.redis") else {
                throw error(
                    node["store"], "coturn.store is redis, so a coturn.redis section must say where (host, port)")
            }
            return .redis(
                .init(
                    host: try hostName(redis, "host", default: "127.0.0.1"),
                    port: try port(redis, "port", default: 6379),
                    database: try integer(redis, "database", default: 0, in: 0...1_000_000),
                    username: try optionalString(redis, "username"),
                    passwordFile: try optionalPath(redis, "password_file"),
                    timeout: try duration(redis, "timeout", default: "5s")))
        default:
            guard let postgres = try optionalSection(node, "postgres", section: "coturn.postgres") else {
                throw error(
                    node["store"],
                    "coturn.store is postgres, so a coturn.postgres section must say where (host, database)")
            }
            if try optionalPath(postgres, "ca_file") != nil, try optionalBool(postgres, "tls") == false {
                throw error(postgres["ca_file"], "coturn.postgres.ca_file is only read with tls: true")
            }
            return .postgres(
                .init(
                    host: try hostName(postgres, "host", default: "127.0.0.1"),
                    port: try port(postgres, "port", default: 5432),
                    database: try string(postgres, "database", default: "coturn"),
                    user: try string(postgres, "user", default: "coturn"),
                    passwordFile: try optionalPath(postgres, "password_file"),
                    tls: try optionalBool(postgres, "tls"),
                    caFile: try optionalPath(postgres, "ca_file"),
                    timeout: try duration(postgres, "timeout", default: "5s")))
        }
    }

    private func daemonSection(_ node: YAMLNode?) throws(TurnkeeperError) -> Configuration.Daemon {
        let listen = try string(node, "listen", default: "127.0.0.1:9478")
        guard let (listenHost, listenPort) = Configuration.hostAndPort(listen) else {
            throw error(node?["listen"], "daemon.listen must be HOST:PORT, such as 127.0.0.1:9478 or [::1]:9478")
        }
        let probeURIs = try optionalStrings(node, "probe_uris")
        for uri in probeURIs ?? [] where (try? TURNURI(uri)) == nil {
            throw error(
                node?["probe_uris"], "daemon.probe_uris holds an entry that is not a TURN URI, \(Self.uriExample)")
        }
        let retryInitial = try duration(node, "retry_initial", default: "1m")
        let retryMax = try duration(node, "retry_max", default: "1h")
        guard retryMax.milliseconds >= retryInitial.milliseconds else {
            throw error(
                node?["retry_max"],
                "daemon.retry_max (\(retryMax.seconds) s) is below daemon.retry_initial (\(retryInitial.seconds) s); "
                    + "retries start at retry_initial and double up to retry_max")
        }
        return Configuration.Daemon(
            listenHost: listenHost,
            listenPort: listenPort,
            probeInterval: try duration(node, "probe_interval", default: "5m"),
            probeURIs: probeURIs,
            probeCAFile: try optionalPath(node, "probe_ca_file"),
            retryInitial: retryInitial,
            retryMax: retryMax,
            calltestHomeserver: try optionalString(node, "calltest_homeserver").map {
                (text) throws(TurnkeeperError) in
                guard let url = HomeserverURL(text) else {
                    throw error(
                        node?["calltest_homeserver"],
                        "daemon.calltest_homeserver must be the homeserver's address as users' Matrix apps reach "
                            + "it, such as https://matrix.example.org (http or https, a host, an optional port and "
                            + "path; nothing else)")
                }
                return url
            },
            auditInterval: try duration(node, "audit_interval", default: "1d")
        )
    }

    /// `consumers:`, a list of apps besides Synapse, each checked against its kind's keys.
    private func consumersSection(_ node: YAMLNode?) throws(TurnkeeperError) -> [Configuration.Consumer] {
        guard let node, !node.isNull else { return [] }
        guard let items = node.sequence else {
            throw error(node, "consumers: must be a list of apps, each with a name and a kind (prosody or file)")
        }
        var consumers: [Configuration.Consumer] = []
        var lines: [String: Int] = [:]
        for item in items {
            guard item.mapping != nil else { throw error(item, "each entry of consumers: must be a mapping") }
            let name = try requiredString(item, "name")
            guard name.utf8.count <= 64,
                name.unicodeScalars.allSatisfy({
                    $0.properties.isAlphabetic || ("0"..."9").contains($0) || "-_.".unicodeScalars.contains($0)
                }),
                name != Configuration.synapseConsumer
            else {
                throw error(
                    item["name"],
                    "consumers: name must be up to 64 letters, digits, '-', '_' or '.', and not synapse (the synapse: "
                        + "section is that consumer)")
            }
            if let first = lines[name] {
                throw error(item["name"], "consumers: \(quoted(name)) is listed twice (first on line \(first))")
            }
            lines[name] = item.line
            let kind = try requiredString(item, "kind")
            guard kind == "prosody" || kind == "file" else {
                throw error(item["kind"], "consumers: kind must be prosody or file (Synapse has its own section)")
            }
            try checkKeys(item, section: "consumers.\(kind)")
            consumers.append(
                .init(name: name, kind: kind == "prosody" ? .prosody(try prosody(item)) : .file(try file(item))))
        }
        return consumers
    }

    private func prosody(_ node: YAMLNode) throws(TurnkeeperError) -> Configuration.Consumer.Prosody {
        guard let hosts = try optionalStrings(node, "hosts"), !hosts.isEmpty, hosts.allSatisfy({ !$0.isEmpty }) else {
            throw error(
                node["hosts"] ?? node,
                "a prosody consumer needs hosts: the VirtualHosts whose credentials are checked, such as "
                    + "[meet.example.org]")
        }
        let configFile = try path(node, "config_file", default: "/etc/prosody/conf.d/turnkeeper.cfg.lua")
        guard configFile.hasSuffix(".cfg.lua") else {
            throw error(
                node["config_file"],
                "config_file must end in .cfg.lua, as Debian's `Include \"conf.d/*.cfg.lua\"` reads")
        }
        let group = try string(node, "group", default: "prosody")
        if GroupID.lookup(group) == nil {
            throw error(
                node["group"] ?? node, "the group \(quoted(group)) does not exist; name the group Prosody runs as")
        }
        _ = try requiredString(node, "turn_host")
        let turnHost = try hostName(node, "turn_host", default: "")
        return .init(
            configFile: configFile,
            prosodyctl: try command(node, "prosodyctl", default: ["prosodyctl"]),
            hosts: hosts, group: group,
            turnHost: turnHost,
            turnPort: try port(node, "turn_port", default: 3478),
            tlsPort: try optionalString(node, "tls_port") == nil ? nil : try port(node, "tls_port", default: 5349),
            tcp: try optionalBool(node, "tcp") ?? false,
            turnUser: try optionalString(node, "turn_user"),
            credentialLifetime: try duration(node, "credential_lifetime", default: "1d"))
    }

    private func file(_ node: YAMLNode) throws(TurnkeeperError) -> Configuration.Consumer.File {
        guard let formatText = try optionalString(node, "format"),
            let format = Configuration.Consumer.File.Format(rawValue: formatText)
        else {
            throw error(node["format"] ?? node, "a file consumer needs format: yaml, json, env or plain")
        }
        let modeText = try string(node, "mode", default: "0600")
        guard modeText.hasPrefix("0"), let mode = UInt32(modeText, radix: 8), mode & ~0o640 == 0 else {
            throw error(
                node["mode"],
                "mode must be octal with a leading 0 and at most 0640: the file holds the secret, so no one but its "
                    + "owner may write it and no other user may read it")
        }
        let group = try optionalString(node, "group")
        if let group, GroupID.lookup(group) == nil {
            throw error(node["group"], "the group \(quoted(group)) does not exist; name the group the app runs as")
        }
        guard node["credential_lifetime"].map({ !$0.isNull }) == true else {
            throw error(
                node,
                "a file consumer needs credential_lifetime: how long the credentials the app hands out stay valid "
                    + "(LiveKit: its turn_servers ttl); the old secret is retired only after it has passed")
        }
        let verifyURL = try optionalURL(node, "verify_url")
        let verifyCommand = try optionalCommand(node, "verify_command")
        if verifyURL != nil && verifyCommand != nil {
            throw error(node["verify_url"], "give verify_url or verify_command, not both")
        }
        return .init(
            path: try requiredPath(node, "path"),
            template: try requiredPath(node, "template"),
            format: format, group: group, mode: mode,
            command: try optionalCommand(node, "command"),
            commandTimeout: try duration(node, "command_timeout", default: "2m"),
            verifyCommand: verifyCommand, verifyURL: verifyURL,
            credentialLifetime: try duration(node, "credential_lifetime", default: "1d"))
    }

    private func requiredPath(_ node: YAMLNode, _ key: String) throws(TurnkeeperError) -> String {
        guard let value = try optionalPath(node, key) else {
            throw error(node[key] ?? node, "\(key) is required: an absolute path")
        }
        return value
    }

    /// Derived secrets: every consumer's lifetime must fit an epoch, as Synapse's must.
    private func checkConsumerSchedule(_ configuration: Configuration, _ node: YAMLNode?) throws(TurnkeeperError) {
        for (index, consumer) in configuration.consumers.enumerated() {
            if let problem = configuration.scheduleProblem(
                lifetime: consumer.credentialLifetime, name: "credential_lifetime")
            {
                let item = node?.sequence?[index]
                throw error(
                    item?["credential_lifetime"] ?? item,
                    "\(consumer.label): \(problem)")
            }
        }
    }

    /// What can be checked of the schedule from turnkeeper.yaml alone; `check`, `rotate` and `run` check it
    /// again against the lifetime Synapse really uses (``Configuration/scheduleProblem(lifetime:)``).
    private func checkSchedule(_ configuration: Configuration, rotation: YAMLNode?, synapse: YAMLNode?)
        throws(TurnkeeperError)
    {
        guard let text = configuration.synapse.turnUserLifetime,
            let lifetime = try? SynapseDuration(parsing: text, source: "turn_user_lifetime"),
            let problem = configuration.scheduleProblem(lifetime: lifetime)
        else { return }
        throw error(rotation?["epoch"] ?? rotation?["interval"] ?? synapse?["turn_user_lifetime"], problem)
    }

    // MARK: Keys and sections

    /// Refuses keys the schema does not know, and keys given twice, naming the nearest valid key.
    private func checkKeys(_ node: YAMLNode, section: String) throws(TurnkeeperError) {
        let allowed = Configuration.schema[section] ?? []
        var seen: [String: Int] = [:]
        for (name, key) in node.keys {
            let qualified = section.isEmpty ? name : "\(section).\(name)"
            if let first = seen[name] {
                throw error(key, "\(qualified) is given twice (first on line \(first)); keep one")
            }
            seen[name] = key.line
            guard allowed.contains(name) else {
                let hint = Self.nearest(to: name, in: allowed).map { "; did you mean \($0)?" } ?? ""
                let known = allowed.joined(separator: ", ")
                throw error(
                    key,
                    "unknown key \(quoted(qualified))\(hint) (\(section.isEmpty ? "top level" : section) takes: \(known))"
                )
            }
        }
    }

    private func section(_ root: YAMLNode, _ key: String) throws(TurnkeeperError) -> YAMLNode {
        guard let node = try optionalSection(root, key) else { throw error(root, "the \(key): section is missing") }
        return node
    }

    private func optionalSection(_ parent: YAMLNode?, _ key: String, section name: String? = nil)
        throws(TurnkeeperError) -> YAMLNode?
    {
        guard let node = parent?[key], !node.isNull else { return nil }
        guard node.mapping != nil else { throw error(node, "\(name ?? key): must be a mapping of options") }
        try checkKeys(node, section: name ?? key)
        return node
    }

    // MARK: Values

    func error(_ node: YAMLNode?, _ message: String) -> TurnkeeperError {
        let line = node.map { ", line \($0.line)" } ?? ""
        return TurnkeeperError(.invalidConfiguration, "\(path)\(line): \(message). See docs/configuration.md.")
    }

    private func quoted(_ text: String) -> String { "\"" + ServerText.escaped(text, limit: 64) + "\"" }

    private func optionalString(_ node: YAMLNode?, _ key: String) throws(TurnkeeperError) -> String? {
        guard let value = node?[key], !value.isNull else { return nil }
        guard let scalar = value.scalar else { throw error(value, "\(key) must be a single value") }
        // `!!binary` and the like would be read as their text, which is not what YAML means by them.
        if let tag = scalar.tag, tag != "tag:yaml.org,2002:str" {
            throw error(value, "\(key) carries a YAML tag turnkeeper does not read; write the value itself")
        }
        guard !scalar.text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
            throw error(value, "\(key) holds a control character")
        }
        return scalar.text
    }

    private func string(_ node: YAMLNode?, _ key: String, default fallback: String) throws(TurnkeeperError) -> String {
        try optionalString(node, key) ?? fallback
    }

    private func requiredString(_ node: YAMLNode, _ key: String) throws(TurnkeeperError) -> String {
        guard let value = try optionalString(node, key), !value.isEmpty else {
            throw error(node[key] ?? node, "\(key) is required and may not be empty or null")
        }
        return value
    }

    private func optionalPath(_ node: YAMLNode?, _ key: String) throws(TurnkeeperError) -> String? {
        guard let text = try optionalString(node, key) else { return nil }
        guard text.hasPrefix("/"), !text.hasSuffix("/") || text == "/" else {
            throw error(node?[key], "\(key) must be an absolute path to a file, such as /etc/… or /var/lib/…")
        }
        return text
    }

    private func path(_ node: YAMLNode?, _ key: String, default fallback: String) throws(TurnkeeperError) -> String {
        try optionalPath(node, key) ?? fallback
    }

    private func optionalStrings(_ node: YAMLNode?, _ key: String) throws(TurnkeeperError) -> [String]? {
        guard let value = node?[key], !value.isNull else { return nil }
        guard let sequence = value.sequence,
            sequence.allSatisfy({ $0.scalar != nil && !$0.isNull })
        else {
            throw error(value, "\(key) must be a list of values, such as [a, b]")
        }
        for item in sequence
        where item.scalar!.text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            throw error(item, "\(key) holds a control character")
        }
        return sequence.map { $0.scalar!.text }
    }

    private func paths(_ node: YAMLNode?, _ key: String, default fallback: [String]) throws(TurnkeeperError)
        -> [String]
    {
        guard let list = try optionalStrings(node, key) else { return fallback }
        guard !list.isEmpty, list.allSatisfy({ $0.hasPrefix("/") }) else {
            throw error(node?[key], "\(key) must list absolute paths, such as [/etc/matrix-synapse/homeserver.yaml]")
        }
        return list
    }

    /// argv for a command run without a shell: a non-empty list of non-empty words, the first an absolute path
    /// or a bare name looked up in a fixed PATH.
    private func optionalCommand(_ node: YAMLNode?, _ key: String) throws(TurnkeeperError) -> [String]? {
        guard let argv = try optionalStrings(node, key) else {
            if let value = node?[key], value.isNull {
                throw error(value, "\(key) is null; give a command, such as [systemctl, restart, matrix-synapse]")
            }
            return nil
        }
        guard let first = argv.first, argv.allSatisfy({ !$0.isEmpty }) else {
            throw error(
                node?[key], "\(key) is empty or holds an empty word; give a command, such as [systemctl, restart, …]")
        }
        guard first.hasPrefix("/") || !first.contains("/") else {
            throw error(node?[key], "\(key) must start with an absolute path or a bare command name")
        }
        return argv
    }

    private func command(_ node: YAMLNode?, _ key: String, default fallback: [String]) throws(TurnkeeperError)
        -> [String]
    {
        try optionalCommand(node, key) ?? fallback
    }

    private func optionalURL(_ node: YAMLNode?, _ key: String) throws(TurnkeeperError) -> String? {
        try optionalString(node, key).map { (text) throws(TurnkeeperError) in try url(text, node?[key], key: key) }
    }

    private func url(_ text: String, _ node: YAMLNode?, key: String) throws(TurnkeeperError) -> String {
        guard text.hasPrefix("http://") || text.hasPrefix("https://"), text.count > 8, !text.contains(" ") else {
            throw error(node, "\(key) must be an http:// or https:// URL")
        }
        return text
    }

    private func hostName(_ node: YAMLNode?, _ key: String, default fallback: String) throws(TurnkeeperError)
        -> String
    {
        let host = try string(node, key, default: fallback)
        guard !host.isEmpty, host.utf8.count <= 253, !host.contains(" ") else {
            throw error(node?[key], "\(key) must be a host name (up to 253 bytes) or an address")
        }
        return host
    }

    private func integer(_ node: YAMLNode?, _ key: String, default fallback: Int, in range: ClosedRange<Int>)
        throws(TurnkeeperError) -> Int
    {
        guard let text = try optionalString(node, key) else { return fallback }
        guard let value = Int(text), range.contains(value) else {
            throw error(node?[key], "\(key) must be a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return value
    }

    private func port(_ node: YAMLNode?, _ key: String, default fallback: Int) throws(TurnkeeperError) -> Int {
        try integer(node, key, default: fallback, in: 1...65535)
    }

    /// A duration kept as text (to be written into Synapse's config), checked with Synapse's rules.
    private func optionalDuration(_ node: YAMLNode?, _ key: String) throws(TurnkeeperError) -> String? {
        guard let text = try optionalString(node, key) else { return nil }
        do {
            _ = try SynapseDuration(parsing: text, source: key)
        } catch let failure {
            throw error(node?[key], failure.reason)
        }
        return text
    }

    private func optionalBool(_ node: YAMLNode?, _ key: String) throws(TurnkeeperError) -> Bool? {
        guard let value = node?[key], !value.isNull else { return nil }
        guard let bool = value.scalar?.bool else { throw error(value, "\(key) must be true or false") }
        return bool
    }

    private func duration(_ node: YAMLNode?, _ key: String, default fallback: String) throws(TurnkeeperError)
        -> SynapseDuration
    {
        let text = try string(node, key, default: fallback)
        do {
            return try SynapseDuration(parsing: text, source: key)
        } catch let failure {
            throw error(node?[key], failure.reason)
        }
    }

    static let uriExample =
        "such as turn:turn.example.org:3478?transport=udp or turns:turn.example.org:5349 (IPv6 in brackets: "
        + "turn:[2001:db8::1]:3478)"

    /// The allowed key closest in edit distance, if it is close enough to be a typo.
    static func nearest(to name: String, in candidates: [String]) -> String? {
        let scored = candidates.map { ($0, editDistance(Array(name.utf8), Array($0.utf8))) }
        guard let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= max(2, name.utf8.count / 3) else { return nil }
        return best.0
    }

    private static func editDistance(_ a: [UInt8], _ b: [UInt8]) -> Int {
        guard !a.isEmpty else { return b.count }
        var previous = Array(0...b.count)
        for (i, x) in a.enumerated() {
            var current = [i + 1] + Array(repeating: 0, count: b.count)
            for (j, y) in b.enumerated() {
                current[j + 1] = min(previous[j + 1] + 1, current[j] + 1, previous[j] + (x == y ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}
