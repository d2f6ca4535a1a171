public import TurnkeeperConfiguration
import TurnkeeperCore
public import TurnkeeperCredentials
import TurnkeeperSynapse

/// What `turnkeeper init` makes of a ``HostSurvey``: a configuration, and in plain words what it found,
/// what it chose and why, and what it could not decide. With anything undecided there is no configuration:
/// a guess that `check` would fail, or that would break a call at the first rotation, is worse than none.
public struct SetupPlan: Sendable {
    /// What the admin may set on the command line; nil: what the host says, or turnkeeper's default.
    public struct Choices: Sendable {
        public var realm: String?
        public var verifyURI: String?
        public var synapseGroup: String?
        /// The systemd unit that runs Synapse, when it is not matrix-synapse.service.
        public var synapseUnit: String?
        public var interval: SynapseDuration?
        public var margin: SynapseDuration?
        public var probeInterval: SynapseDuration?

        public init(
            realm: String? = nil, verifyURI: String? = nil, synapseGroup: String? = nil, synapseUnit: String? = nil,
            interval: SynapseDuration? = nil, margin: SynapseDuration? = nil, probeInterval: SynapseDuration? = nil
        ) {
            self.realm = realm
            self.verifyURI = verifyURI
            self.synapseGroup = synapseGroup
            self.synapseUnit = synapseUnit
            self.interval = interval
            self.margin = margin
            self.probeInterval = probeInterval
        }
    }

    public private(set) var found: [String] = []
    /// Each choice with its reason.
    public private(set) var chose: [String] = []
    /// Each with what to do about it.
    public private(set) var undecided: [String] = []
    /// Things to do by hand that do not stop the configuration from working.
    public private(set) var notes: [String] = []
    /// nil when anything is undecided.
    public private(set) var configuration: Configuration?

    public init(_ survey: HostSurvey, choices: Choices = Choices(), path: String = Configuration.defaultPath) {
        var synapse = Configuration.Synapse(configPaths: survey.paths.synapseConfig)
        var lifetime = SynapseDuration.hours(1)

        // Synapse.
        switch survey.synapse {
        case .failure(let error):
            undecided.append(
                "Synapse's configuration: \(error.reason) (Debian's is /etc/matrix-synapse/homeserver.yaml "
                    + "with conf.d/; pass --synapse-config for another layout)")
        case .success(let config):
            lifetime = config.turnUserLifetime
            let secretAt = config.location(of: "turn_shared_secret") ?? config.location(of: "turn_shared_secret_path")
            found.append(
                "Synapse: \(config.files.count) file(s) from \(survey.paths.synapseConfig.joined(separator: ", ")); "
                    + (config.turnSecret.map {
                        "its TURN secret (\($0.fingerprint)) is set in \(secretAt ?? "its configuration")"
                    }
                        ?? "no TURN secret")
                    + "; \(config.turnURIs.count) turn_uris; turn_user_lifetime \(lifetime.seconds) s")
            if config.turnSecret == nil {
                undecided.append(
                    "Synapse has no turn_shared_secret: give Synapse and coturn one secret first "
                        + "(turnkeeper secret generate; docs/rotation.md), then run init again")
            }
            if config.turnURIs.isEmpty {
                notes.append(
                    "Synapse lists no turn_uris, so it hands clients no TURN server: add them to Synapse's configuration"
                )
            }
            if let directory = survey.paths.synapseConfig.dropFirst().first(where: { !$0.hasSuffix(".yaml") }) {
                let keys = ["turn_shared_secret", "turn_shared_secret_path"]
                // Files in conf.d that set the secret, and the names turnkeeper's own file could take: the usual
                // one, or, after an admin's `<domain>.yaml` (as the article has it), one that sorts after it.
                let setting = keys.compactMap { config.origins[$0] }.filter { $0.hasPrefix(directory + "/") }
                let candidates = ["90-turnkeeper.yaml", "zz-turnkeeper.yaml"].map { directory + "/" + $0 }
                let after = { (name: String) in setting.allSatisfy { SynapseConfig.pathOrder($0, name) } }
                if let name = candidates.first(where: after) {
                    synapse.managedFile = name
                    let overridden = setting.compactMap { file in
                        keys.compactMap { config.location(of: $0) }.first { $0.hasPrefix(file) }
                    }
                    chose.append(
                        "synapse.managed_file \(synapse.managedFile): turnkeeper's own conf.d file, after every file that "
                            + "sets the secret, so Synapse reads the new secret from it (secret inline; it cancels any "
                            + "turn_shared_secret_path)"
                            + (overridden.isEmpty
                                ? ""
                                : "; it overrides \(overridden.joined(separator: ", ")), which may stay as it is"))
                } else {
                    synapse.managedFile = candidates[1]
                    let file = setting.last ?? directory
                    undecided.append(
                        "\(file) sets Synapse's TURN secret and sorts after \(synapse.managedFile), so it would win over "
                            + "turnkeeper's file: move its turn_ options into homeserver.yaml or a file that sorts earlier"
                    )
                }
            } else {
                undecided.append(
                    "Synapse is given no conf.d directory: add --config-path=/etc/matrix-synapse/conf.d/ to its "
                        + "service (Debian's unit has it) and pass --synapse-config with both")
            }
        }
        let ownGroup =
            "create a group of Synapse's own and make it Synapse's (`groupadd --system matrix-synapse && usermod -g "
            + "matrix-synapse matrix-synapse`, then restart Synapse), then pass --synapse-group matrix-synapse"
        if let group = choices.synapseGroup, let problem = GroupID.sharedGroupProblem(group, user: "matrix-synapse") {
            undecided.append(
                "--synapse-group \(group): \(problem). Pass the group only Synapse runs as, or \(ownGroup)")
        } else if let group = choices.synapseGroup {
            synapse.group = group
            chose.append("synapse.group \(group): as given")
        } else if GroupID.lookup("matrix-synapse") != nil {
            synapse.group = "matrix-synapse"
            chose.append(
                "synapse.group matrix-synapse: Debian's Synapse runs as that group; turnkeeper's files are 0640 root:matrix-synapse"
            )
        } else if let group = survey.synapseFileGroup,
            let problem = GroupID.sharedGroupProblem(group, user: "matrix-synapse")
        {
            undecided.append(
                "the group Synapse runs as: \(survey.paths.synapseConfig.first ?? "Synapse's file") belongs to \(group), "
                    + "but \(problem); \(ownGroup)")
        } else if let group = survey.synapseFileGroup {
            synapse.group = group
            chose.append("synapse.group \(group): the group of \(survey.paths.synapseConfig.first ?? "Synapse's file")")
        } else {
            undecided.append("the group Synapse runs as (no matrix-synapse group here): pass --synapse-group")
        }
        notes.append(
            "optional: set synapse.homeserver and synapse.access_token_file (a 0600 file with the access token of a "
                + "Matrix user of its own) so that each rotation, and the daemon's every probe, also check what the "
                + "running Synapse hands out, not only what its files say")
        if let unit = choices.synapseUnit {
            synapse.restartCommand = ["systemctl", "restart", unit]
            chose.append("synapse.restart_command systemctl restart \(unit): as given")
        } else if survey.units.contains("matrix-synapse.service") {
            chose.append(
                "synapse.restart_command systemctl restart matrix-synapse: the unit exists; a new secret needs a restart"
            )
        } else {
            undecided.append(
                "how to restart Synapse (no matrix-synapse.service here): pass --synapse-unit with its systemd unit "
                    + "(for a Synapse outside systemd, edit synapse.restart_command afterwards)")
        }

        // coturn.
        var coturn: Configuration.Coturn?
        switch survey.coturn {
        case nil:
            undecided.append(
                "coturn: no \(survey.paths.turnserverConf) on this host. If coturn runs on another host, see "
                    + "docs/separate-turn-host.md (init sets up a single host only); else pass --turnserver-conf")
        case .failure(let error)?:
            undecided.append("coturn's configuration: \(error.reason)")
        case .success(let conf)?:
            coturn = decideCoturn(conf, choices: choices)
        }

        // Other apps that sign with the secret.
        for prosody in survey.prosody {
            switch prosody.matchesSynapse {
            case true?:
                undecided.append(
                    "Prosody signs TURN credentials with Synapse's secret (\(prosody.file):\(prosody.line), "
                        + "\(prosody.option)): list it under consumers: (docs/consumers.md), or its calls fail once "
                        + "the first rotation retires the secret. init does not guess its hosts")
            case false?:
                found.append(
                    "Prosody: \(prosody.option) at \(prosody.file):\(prosody.line) is not Synapse's secret; rotation "
                        + "leaves coturn's copy of it alone")
            case nil:
                undecided.append(
                    "Prosody sets \(prosody.option) at \(prosody.file):\(prosody.line) in a form init cannot compare: "
                        + "if it is Synapse's secret, list Prosody under consumers: (docs/consumers.md)")
            }
        }

        var rotation = Configuration.Rotation()
        if let interval = choices.interval { rotation.interval = interval }
        if let margin = choices.margin { rotation.margin = margin }
        if rotation.interval.seconds > lifetime.seconds + rotation.margin.seconds {
            chose.append(
                "rotation every \(rotation.interval.text), old secrets retired \(rotation.margin.text) after the last "
                    + "credential signed with them expires" + (choices.interval == nil ? " (turnkeeper's default)" : "")
            )
        } else {
            undecided.append(
                "rotation.interval (\(rotation.interval.seconds) s) must exceed turn_user_lifetime plus the margin "
                    + "(\(lifetime.seconds + rotation.margin.seconds) s): pass a longer --interval")
        }
        var daemon = Configuration.Daemon()
        if let probe = choices.probeInterval { daemon.probeInterval = probe }

        guard undecided.isEmpty, let coturn else { return }
        configuration = Configuration(
            synapse: synapse, coturn: coturn, rotation: rotation, daemon: daemon, path: path)
    }

    private mutating func decideCoturn(_ conf: HostSurvey.Coturn, choices: Choices) -> Configuration.Coturn? {
        found.append(
            "coturn: \(conf.path): realm \(conf.realm ?? "not set"), "
                + (conf.useAuthSecret ? "use-auth-secret" : "no use-auth-secret")
                + ", \(conf.staticSecretLines.count) static-auth-secret line(s), listening on port \(conf.listeningPort)"
        )
        if !conf.useAuthSecret {
            undecided.append(
                "\(conf.path) lacks use-auth-secret: coturn refuses TURN REST credentials such as Synapse's. Add "
                    + "use-auth-secret (and remove lt-cred-mech), restart coturn, and run init again")
        }
        guard let realm = choices.realm ?? conf.realm, !realm.isEmpty else {
            undecided.append("coturn's realm: \(conf.path) sets none; set realm= there (or pass --realm)")
            return nil
        }
        let host: String
        if let ip = conf.listeningIPs.first(where: { $0 != "0.0.0.0" && $0 != "::" }),
            !conf.listeningIPs.contains(where: { $0 == "0.0.0.0" || Configuration.isLoopback($0) })
        {
            host = ip.contains(":") ? "[\(ip)]" : ip
        } else {
            host = "127.0.0.1"
        }
        let verifyURI =
            choices.verifyURI ?? "turn:\(host):\(conf.listeningPort)?transport=\(conf.noUDP ? "tcp" : "udp")"
        notes.append(
            "make sure Synapse's turn_uris name this coturn: after init, `turnkeeper probe --synapse-config` with "
                + "Synapse's paths relays through what clients are given (check does not resolve them)")
        chose.append(
            "coturn.verify_uri \(verifyURI): "
                + (choices.verifyURI == nil
                    ? "where coturn listens on this host; each new secret is proven there with a real allocation"
                    : "as given"))
        let store: Configuration.Coturn.Store
        if let shared = conf.sharedDatabase {
            undecided.append(
                "coturn keeps its secrets in a shared database (\(shared)): set coturn.store (redis or postgres) and its "
                    + "connection by hand (docs/configuration.md)")
            return nil
        } else if !conf.staticSecretLines.isEmpty {
            store = .config(.init())
            chose.append(
                "coturn.store config: coturn takes its secret from static-auth-secret in \(conf.path) (line "
                    + conf.staticSecretLines.map(String.init).joined(separator: ", ")
                    + "), so turnkeeper edits those lines and restarts coturn, which drops every call in progress")
            notes.append(
                "the unit can write \(conf.path) only with a drop-in: `systemctl edit turnkeeper`, then "
                    + "[Service] ReadWritePaths=\(directory(of: conf.path)) (docs/operations.md)")
            notes.append(
                "to rotate without dropping calls (recommended): `turnkeeper init --move-static-secret` moves the "
                    + "secret from \(conf.path) into coturn's database with one coturn restart, proves it, and writes "
                    + "store: sqlite; then no rotation restarts coturn, and the drop-in above is not needed")
        } else {
            let database = conf.sqliteDatabase ?? "/var/lib/turn/turndb"
            store = .sqlite(database: database)
            chose.append(
                "coturn.store sqlite \(database): coturn reads its database on every login, so a rotation needs no "
                    + "coturn restart and drops no call")
        }
        return Configuration.Coturn(realm: realm, verifyURI: verifyURI, store: store, configFile: conf.path)
    }

    private func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return "/" }
        return String(path[..<slash])
    }

    /// turnkeeper.yaml as init writes it: what it found and chose as comments, then every setting explicit.
    public func rendered() -> String? {
        guard let configuration else { return nil }
        let header =
            [
                "Written by `turnkeeper init` from what it found on this host. Edit freely; see docs/configuration.md.",
                "",
            ]
            + found.map { "found: \($0)" } + chose.map { "chose: \($0)" } + notes.map { "to do: \($0)" }
        return configuration.rendered(header: header)
    }
}
