import Foundation
import Glibc
import TurnkeeperCredentials

/// One turnkeeper deployment for end-to-end tests: a real coturn, Synapse's configuration directory
/// (homeserver.yaml, conf.d, the managed file, in path mode the secret file) or a real Synapse, turnkeeper.yaml
/// and a state directory, all under one private directory. turnkeeper.yaml is rendered from ``settings`` by
/// ``TestConfiguration/render()``.
public struct TurnkeeperDeployment: Sendable {
    public struct Options: Sendable {
        public enum Store: Sendable {
            case sqlite
            /// turnserver.conf's static-auth-secret lines; coturn runs supervised, restarted by turnkeeper.
            case config
            case redis(RedisServer)
            case postgres(PostgresServer)
        }

        public enum Role: Sendable {
            case single
            /// The TURN host of two (no synapse section), deriving epochs of `epoch` from a root key.
            case turn(epoch: String)
            /// The Synapse host of two.
            case synapse(epoch: String)
        }

        public enum SecretPlace: Sendable {
            /// In homeserver.yaml, as Debian's package has it.
            case homeserver
            /// In conf.d/10-admin.yaml, beside the TURN URIs.
            case confD
        }

        /// Synapse's secret mode: inline (turn_shared_secret) or path (turn_shared_secret_path, a 0640 file).
        public enum Mode: String, Sendable {
            case inline
            case path
        }

        public var store = Store.sqlite
        public var role = Role.single
        public var mode = Mode.inline
        /// A real Synapse (supervised, restarted by turnkeeper, alice registered for an access token), or only
        /// its configuration directory.
        public var realSynapse = false
        /// Where the admin's existing secret (``TurnkeeperDeployment/original``) is; nil: Synapse has none.
        public var secretPlace: SecretPlace? = .confD
        /// Synapse's turn_user_lifetime; nil leaves it out.
        public var turnUserLifetime: String? = "1h"
        /// Lines added to homeserver.yaml (configuration directory only).
        public var homeserverLines: [String] = []
        /// Synapse's restart command; nil: the real Synapse's restart, or /bin/true for a directory.
        public var synapseRestart: [String]?
        /// Synapse's restart goes through restart-synapse.sh, which appends its argv to restart-argv.txt and its
        /// environment to restart-env.txt, and waits while the test holds restarts (``hold()``).
        public var recordRestarts = false
        /// store config: coturn's restart goes through restart-coturn.sh, which waits while the test holds
        /// restarts (``hold()``).
        public var holdableCoturnRestart = false
        /// store config: coturn.restart_timeout.
        public var coturnRestartTimeout: String?
        public var coturn = CoturnServer.Options()
        /// coturn's static-auth-secret lines at start (the SQLite store starts empty).
        public var coturnSecrets: [String] = []
        /// Also a static-auth-secret line with ``TurnkeeperDeployment/original`` (always with store config).
        public var originalInCoturnConfig = false
        /// Roles turn and synapse: the root key (default: a new one).
        public var rootKey: TurnSecret?
        public var realm: String?
        public var group = "nogroup"
        public var interval: String?
        public var margin: String? = "1s"
        /// A daemon section listening on loopback, on a port the daemon picks and logs (``DaemonProcess/port``).
        public var daemon = false
        public var probeInterval = "30s"
        /// daemon.audit_interval; nil: the default (a day, the first audit ten minutes after the start).
        public var auditInterval: String?
        public var retryMax = "2s"
        /// YAML appended to turnkeeper.yaml as it is.
        public var extraYAML = ""

        public init() {}
    }

    public let directory: TemporaryDirectory
    public let coturn: CoturnServer
    public let synapse: SynapseServer?
    /// The secret Synapse has before turnkeeper starts (also in coturn's config when store is config).
    public let original: TurnSecret
    /// With a real Synapse: alice's access token, and the file it is in.
    public let token: String?
    public let tokenFile: String?
    /// Roles turn and synapse: the shared root key, and its file.
    public let rootKey: TurnSecret?
    public let homeserverYAML: String
    public let confD: String
    public let managedFile: String
    public let secretFile: String
    public let stateDirectory: String
    public let config: String
    /// What turnkeeper.yaml says; a test may change it before ``writeConfig(mode:_:)``.
    public var settings: TestConfiguration
    private let database: (@Sendable () -> Void)?

    public init(_ options: Options = Options()) throws {
        directory = try TemporaryDirectory()
        original = try TurnSecret.generate()
        let secret = original.withExposedBytes { String(decoding: $0, as: UTF8.self) }
        var coturnOptions = options.coturn
        if let realm = options.realm { coturnOptions.realm = realm }
        var coturnSecrets = options.coturnSecrets
        if options.originalInCoturnConfig { coturnSecrets.append(secret) }
        switch options.store {
        case .sqlite: break
        case .config:
            coturnOptions.supervised = true
            if !options.originalInCoturnConfig { coturnSecrets.append(secret) }
        case .redis(let redis): coturnOptions.userDatabaseLines = [redis.coturnLine]
        case .postgres(let postgres): coturnOptions.userDatabaseLines = [postgres.coturnLine]
        }
        switch options.store {
        case .redis(let redis): database = { redis.remove() }
        case .postgres(let postgres): database = { postgres.remove() }
        default: database = nil
        }
        coturn = try CoturnServer(secrets: coturnSecrets, options: coturnOptions)
        let verifyURI = "turn:127.0.0.1:\(coturn.port)?transport=udp"

        var synapseYAML = ["turn_uris: [\"\(verifyURI)\"]"]
        if options.secretPlace != nil {
            synapseYAML.append(
                options.mode == .path
                    ? "turn_shared_secret_path: \"\(directory.file("synapse-turn-secret"))\""
                    : "turn_shared_secret: \"\(secret)\"")
        }
        if let lifetime = options.turnUserLifetime { synapseYAML.append("turn_user_lifetime: \(lifetime)") }
        if options.realSynapse {
            let synapse = try SynapseServer(
                confFiles: ["10-admin.yaml": synapseYAML.joined(separator: "\n")], supervised: true)
            self.synapse = synapse
            homeserverYAML = synapse.homeserverYAML
            confD = synapse.confD
            let token = try synapse.register("alice")
            self.token = token
            tokenFile = try directory.write("token", token + "\n")
        } else {
            synapse = nil
            token = nil
            tokenFile = nil
            homeserverYAML = directory.file("synapse/homeserver.yaml")
            confD = directory.file("synapse/conf.d")
            try FileManager.default.createDirectory(atPath: confD, withIntermediateDirectories: true)
            var homeserver = ["server_name: test.local"] + options.homeserverLines
            if options.secretPlace == .homeserver { homeserver += synapseYAML }
            try directory.write("synapse/homeserver.yaml", homeserver.joined(separator: "\n") + "\n")
            if options.secretPlace == .confD {
                try directory.write("synapse/conf.d/10-admin.yaml", synapseYAML.joined(separator: "\n") + "\n")
            }
        }
        managedFile = confD + "/90-turnkeeper.yaml"
        secretFile = directory.file("synapse-turn-secret")
        if options.mode == .path && options.secretPlace != nil {
            // As Synapse's package leaves it: readable by Synapse's group, not by others.
            try directory.write("synapse-turn-secret", secret + "\n", mode: 0o640)
        }
        stateDirectory = directory.file("state")

        var synapseSettings = TestConfiguration.Synapse(config: [homeserverYAML, confD])
        synapseSettings.managedFile = managedFile
        synapseSettings.mode = options.mode.rawValue
        if options.mode == .path { synapseSettings.secretFile = secretFile }
        synapseSettings.group = options.group
        var restart = options.synapseRestart ?? synapse?.restartCommand ?? ["/bin/true"]
        if options.recordRestarts {
            restart = [
                "/bin/bash",
                try Self.writeHoldable("restart-synapse.sh", in: directory, running: restart, record: true),
            ]
        }
        synapseSettings.restartCommand = restart
        if let synapse, let tokenFile {
            synapseSettings.healthURL = synapse.baseURL + "/health"
            synapseSettings.homeserver = synapse.baseURL
            synapseSettings.accessTokenFile = tokenFile
            synapseSettings.turnAllowGuests = false
        }

        var coturnSettings = TestConfiguration.Coturn(realm: coturn.realm, verifyURI: verifyURI)
        switch options.store {
        case .sqlite:
            coturnSettings.database = coturn.userDatabase
        case .config:
            coturnSettings.store = "config"
            coturnSettings.configFile = coturn.configPath
            coturnSettings.restartCommand =
                options.holdableCoturnRestart
                ? [
                    "/bin/bash",
                    try Self.writeHoldable("restart-coturn.sh", in: directory, running: coturn.restartCommand),
                ]
                : coturn.restartCommand
            coturnSettings.restartTimeout = options.coturnRestartTimeout
        case .redis(let redis):
            coturnSettings.store = "redis"
            var settings = TestConfiguration.Redis(port: Int(redis.port))
            settings.passwordFile = redis.passwordFile
            settings.timeout = "2s"
            coturnSettings.redis = settings
        case .postgres(let postgres):
            coturnSettings.store = "postgres"
            var settings = TestConfiguration.Postgres(port: Int(postgres.port), database: "coturn", user: "coturn")
            settings.passwordFile = postgres.passwordFile
            settings.timeout = "2s"
            coturnSettings.postgres = settings
        }

        var rotation = TestConfiguration.Rotation(stateDirectory: stateDirectory)
        rotation.interval = options.interval
        rotation.margin = options.margin
        var yaml = TestConfiguration(synapse: synapseSettings, coturn: coturnSettings, rotation: rotation)
        switch options.role {
        case .single:
            rootKey = nil
        case .turn(let epoch), .synapse(let epoch):
            let key = try options.rootKey ?? TurnSecret.generate()
            rootKey = key
            let keyFile = try directory.write(
                "root-key", key.withExposedBytes { String(decoding: $0, as: UTF8.self) } + "\n")
            yaml.rotation.mode = "derived"
            yaml.rotation.rootKeyFile = keyFile
            yaml.rotation.epoch = epoch
            yaml.rotation.margin = nil
            if case .turn = options.role {
                yaml.role = "turn"
                yaml.synapse = nil
            } else {
                yaml.role = "synapse"
                yaml.coturn.database = nil
            }
        }
        if options.daemon {
            var daemon = TestConfiguration.Daemon()
            // Port 0: the daemon logs the port it got (DaemonProcess.port).
            daemon.listen = "127.0.0.1:0"
            daemon.probeInterval = options.probeInterval
            daemon.auditInterval = options.auditInterval
            daemon.retryInitial = "1s"
            daemon.retryMax = options.retryMax
            yaml.daemon = daemon
        }
        yaml.extra = options.extraYAML
        settings = yaml
        config = directory.file("turnkeeper.yaml")
        try writeConfig()
    }

    /// Renders ``settings``, changed by `change`, into turnkeeper.yaml (`mode` 0600 unless told).
    @discardableResult
    public func writeConfig(mode: mode_t = 0o600, _ change: (inout TestConfiguration) -> Void = { _ in }) throws
        -> String
    {
        var yaml = settings
        change(&yaml)
        return try directory.write("turnkeeper.yaml", try yaml.render(), mode: mode)
    }

    /// Runs the turnkeeper binary with `arguments` and `--config`.
    public func run(_ arguments: [String], timeout: Duration = .seconds(180), environment: [String: String] = [:])
        throws -> ProcessOutput
    {
        try TurnkeeperBinary.run(arguments + ["--config", config], timeout: timeout, environment: environment)
    }

    /// `turnkeeper status --json`.
    public func status(environment: [String: String] = [:]) throws -> [String: Any] {
        let output = try run(["status", "--json"], environment: environment)
        return try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any] ?? [:]
    }

    /// The secret in the state file (state.json's `current`).
    public func currentSecret() throws -> TurnSecret {
        let path = stateDirectory + "/state.json"
        let state = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path)))
        guard let current = (state as? [String: Any])?["current"] as? String else {
            throw TestFailure("no current secret in \(path)")
        }
        return try TurnSecret(adopting: current, source: path)
    }

    /// True when coturn grants an allocation signed with `secret`, false when it refuses it. A refusal prints
    /// coturn's log (which says why; a 401 cannot), for a test that expected acceptance.
    public func accepts(_ secret: TurnSecret) async throws -> Bool {
        let credential = try CredentialMinter(secret: secret)
            .credential(user: "@alice:test.local", expiry: Int64(Date().timeIntervalSince1970) + 600)
        let accepted = try await TURNAllocation.succeeds(
            port: coturn.port, username: credential.username, password: credential.password)
        if !accepted {
            print(
                "coturn on port \(coturn.port) refused \(secret.fingerprint); the end of its log:\n\(coturn.log.suffix(3000))"
            )
        }
        return accepted
    }

    public func stop() {
        synapse?.stop()
        coturn.stop()
        database?()
        directory.remove()
    }

    // MARK: Holding restarts

    /// While held, restart-synapse.sh and restart-coturn.sh append their PID to held.pids and wait on the hold
    /// FIFO instead of restarting; ``release()`` lets them go on.
    public var holdPath: String { directory.file("hold") }

    public func hold() throws {
        guard mkfifo(holdPath, 0o600) == 0 else { throw TestFailure("mkfifo \(holdPath): errno \(errno)") }
    }

    /// Lets every held restart go on; restarts from now on run at once.
    public func release() {
        // The holders have the FIFO open read-write, so this open does not block; one line lets each go.
        let fd = open(holdPath, O_WRONLY | O_NONBLOCK)
        if fd >= 0 {
            let lines = Array(String(repeating: "go\n", count: 16).utf8)
            _ = write(fd, lines, lines.count)
            close(fd)
        }
        unlink(holdPath)
    }

    /// The PIDs of the restarts held so far.
    public var heldRestarts: [pid_t] {
        ((try? String(contentsOfFile: directory.file("held.pids"), encoding: .utf8)) ?? "").split(separator: "\n")
            .compactMap { pid_t($0) }
    }

    /// SIGKILLs every restart script of this deployment still running (held, or on its way to the hold), as a
    /// crash of the machine would end them; none of them has restarted anything while restarts are held.
    public func killRestartScripts() {
        let marker = directory.path + "/restart-"
        let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        for name in pids {
            guard let pid = pid_t(name),
                let argv = try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(name)/cmdline")),
                String(decoding: argv, as: UTF8.self).contains(marker)
            else { continue }
            kill(pid, SIGKILL)
        }
    }

    /// Waits until `count` restarts have been held in all; fails when `process` exits first or after `timeout`.
    public func waitForHeldRestarts(_ count: Int, of process: ChildProcess, timeout: Duration = .seconds(120))
        async throws
    {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while heldRestarts.count < count {
            guard process.isRunning, clock.now < deadline else {
                throw TestFailure("no restart was held (\(heldRestarts.count) of \(count))")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// A script that runs `restart`, unless restarts are held: then it waits to be released (at most 10 minutes).
    /// With `record`, it first appends its argv to restart-argv.txt and its environment to restart-env.txt.
    static func writeHoldable(
        _ name: String, in directory: TemporaryDirectory, running restart: [String], record: Bool = false
    ) throws -> String {
        let recording = """
            echo "$0 $@" >>\(directory.file("restart-argv.txt"))
            env >>\(directory.file("restart-env.txt"))

            """
        return try directory.write(
            name,
            (record ? recording : "")
                + """
                if [ -p \(directory.file("hold")) ]; then
                    exec 3<>\(directory.file("hold"))
                    echo $$ >>\(directory.file("held.pids"))
                    read -t 600 -u 3 line || exit 1
                    exec 3<&-
                fi
                exec \(restart.joined(separator: " "))
                """)
    }
}
