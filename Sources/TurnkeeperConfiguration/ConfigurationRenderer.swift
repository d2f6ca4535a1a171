import TurnkeeperCredentials
import TurnkeeperYAML

extension Configuration {
    /// turnkeeper.yaml for this configuration: every setting the role reads, each explicit, so an admin sees
    /// what is in force; ``Configuration/load(_:)`` reads it back to an equal value. `header` lines become
    /// comments at the top.
    public func rendered(header: [String] = []) -> String {
        var out = YAMLWriter()
        for line in header { out.comment(line) }
        out.key("role", role.name)
        if role.hasSynapseSection || synapse != Synapse() {
            out.section("synapse")
            out.key("config", list: synapse.configPaths, plain: true)
            out.key("managed_file", synapse.managedFile)
            switch synapse.secret {
            case .inline:
                out.key("mode", "inline")
            case .file(let path):
                out.key("mode", "path")
                out.key("secret_file", path)
            }
            out.key("group", synapse.group)
            out.key("restart_command", list: synapse.restartCommand, plain: true)
            if let health = synapse.healthURL { out.key("health_url", health) }
            if let uris = synapse.turnURIs { out.key("turn_uris", list: uris, plain: false) }
            if let lifetime = synapse.turnUserLifetime { out.key("turn_user_lifetime", lifetime) }
            if let guests = synapse.turnAllowGuests {
                out.key("turn_allow_guests", guests ? "true" : "false", quoted: false)
            }
            if let check = synapse.apiCheck {
                out.key("homeserver", check.homeserver)
                out.key("access_token_file", check.accessTokenFile)
            }
            out.end()
        }
        out.section("coturn")
        out.key("realm", coturn.realm)
        out.key("verify_uri", coturn.verifyURI)
        out.key("store", coturn.store.name)
        if let file = coturn.configFile { out.key("config_file", file) }
        switch coturn.store {
        case .sqlite(let database):
            out.key("database", database)
        case .config(let file):
            out.key("restart_command", list: file.restartCommand, plain: true)
            out.key("restart_timeout", file.restartTimeout.text)
        case .redis(let redis):
            out.section("redis")
            out.key("host", redis.host)
            out.key("port", String(redis.port), quoted: false)
            out.key("database", String(redis.database), quoted: false)
            if let user = redis.username { out.key("username", user) }
            if let file = redis.passwordFile { out.key("password_file", file) }
            out.key("timeout", redis.timeout.text)
            out.end()
        case .postgres(let postgres):
            out.section("postgres")
            out.key("host", postgres.host)
            out.key("port", String(postgres.port), quoted: false)
            out.key("database", postgres.database)
            out.key("user", postgres.user)
            if let file = postgres.passwordFile { out.key("password_file", file) }
            out.key("tls", postgres.tls ? "true" : "false", quoted: false)
            if let caFile = postgres.caFile { out.key("ca_file", caFile) }
            out.key("timeout", postgres.timeout.text)
            out.end()
        }
        out.end()
        out.section("rotation")
        if let derivation {
            out.key("mode", "derived")
            out.key("root_key_file", derivation.rootKeyFile)
            if let previous = derivation.previousRootKeyFile { out.key("previous_root_key_file", previous) }
            out.key("epoch", derivation.epoch.text)
            if case .turnHost = role {
                out.key("keep_previous_epochs", String(derivation.keepPreviousEpochs), quoted: false)
                if let catchUp = derivation.catchUp { out.key("catch_up", catchUp.text) }
            }
        } else {
            out.key("mode", "random")
        }
        out.key("interval", rotation.interval.text)
        out.key("margin", rotation.margin.text)
        out.key("state_directory", rotation.stateDirectory)
        out.end()
        out.section("daemon")
        let host = daemon.listenHost.contains(":") ? "[\(daemon.listenHost)]" : daemon.listenHost
        out.key("listen", "\(host):\(daemon.listenPort)")
        out.key("probe_interval", daemon.probeInterval.text)
        out.key("audit_interval", daemon.auditInterval.text)
        if let uris = daemon.probeURIs { out.key("probe_uris", list: uris, plain: false) }
        if let file = daemon.probeCAFile { out.key("probe_ca_file", file) }
        out.key("retry_initial", daemon.retryInitial.text)
        out.key("retry_max", daemon.retryMax.text)
        if let homeserver = daemon.calltestHomeserver { out.key("calltest_homeserver", homeserver.text) }
        out.end()
        if !consumers.isEmpty {
            out.section("consumers")
            for consumer in consumers { out.consumer(consumer) }
            out.end()
        }
        return out.text
    }
}

/// Block-style YAML; scalars through ``YAMLText``.
private struct YAMLWriter {
    var text = ""
    private var depth = 0

    /// A comment line; anything but printable ASCII becomes `?`, so no text can end the comment early.
    mutating func comment(_ line: String) {
        let safe = String(
            String.UnicodeScalarView(line.unicodeScalars.map { $0.value >= 0x20 && $0.value < 0x7F ? $0 : "?" }))
        text += "# \(safe)\n"
    }

    mutating func section(_ name: String) {
        line("\(name):")
        depth += 1
    }

    mutating func end() { depth -= 1 }

    /// A string, plain when YAML reads it back as the same text, else double-quoted; `quoted: false` for numbers
    /// and booleans.
    mutating func key(_ name: String, _ value: String, quoted: Bool = true) {
        line("\(name): \(quoted ? YAMLText.scalar(value) : value)")
    }

    /// `plain`: words that need no quotes (paths, argv words without YAML syntax) stay readable.
    mutating func key(_ name: String, list: [String], plain: Bool) {
        let items = list.map { plain ? YAMLText.scalar($0) : YAMLText.doubleQuoted($0) }
        line("\(name): [\(items.joined(separator: ", "))]")
    }

    /// One entry of `consumers:`, a mapping in a block sequence.
    mutating func consumer(_ consumer: Configuration.Consumer) {
        line("- name: \(YAMLText.scalar(consumer.name))")
        depth += 1
        key("kind", consumer.kind.name)
        switch consumer.kind {
        case .prosody(let prosody):
            key("config_file", prosody.configFile)
            key("prosodyctl", list: prosody.prosodyctl, plain: true)
            key("hosts", list: prosody.hosts, plain: false)
            key("group", prosody.group)
            key("turn_host", prosody.turnHost)
            key("turn_port", String(prosody.turnPort), quoted: false)
            if let port = prosody.tlsPort { key("tls_port", String(port), quoted: false) }
            key("tcp", prosody.tcp ? "true" : "false", quoted: false)
            if let user = prosody.turnUser { key("turn_user", user) }
            key("credential_lifetime", prosody.credentialLifetime.text)
        case .file(let file):
            key("path", file.path)
            key("template", file.template)
            key("format", file.format.rawValue)
            if let group = file.group { key("group", group) }
            key("mode", "0" + String(file.mode, radix: 8), quoted: false)
            if let command = file.command { key("command", list: command, plain: true) }
            key("command_timeout", file.commandTimeout.text)
            if let verify = file.verifyCommand { key("verify_command", list: verify, plain: true) }
            if let url = file.verifyURL { key("verify_url", url) }
            key("credential_lifetime", file.credentialLifetime.text)
        }
        depth -= 1
    }

    private mutating func line(_ content: String) {
        text += String(repeating: "  ", count: depth) + content + "\n"
    }
}
