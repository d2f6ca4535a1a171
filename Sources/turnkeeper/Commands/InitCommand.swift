import ArgumentParser
import Glibc
import TurnkeeperChecks
import TurnkeeperConfiguration
import TurnkeeperCore
import TurnkeeperCrypto
import TurnkeeperExecution
import TurnkeeperRotation
import TurnkeeperSetup
import TurnkeeperStores

struct InitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Write turnkeeper.yaml from what this host has: Synapse, coturn, the apps beside them.",
        usage: "turnkeeper init [--config <file>] [--print] [<options>]",
        discussion: """
            Reads Synapse's configuration (Debian: /etc/matrix-synapse/homeserver.yaml
            and conf.d/), coturn's /etc/turnserver.conf (realm, use-auth-secret,
            user database, static-auth-secret lines, listening port), Prosody's
            turn_external_secret, the matrix-synapse group and the systemd units.
            Then it says what it found, what it chose and why, and what it could
            not decide, and writes /etc/turnkeeper/turnkeeper.yaml (0600) with all
            of that as comments. It changes nothing else: run `turnkeeper check`,
            then `systemctl enable --now turnkeeper`.

            It never overwrites a configuration: an existing file is left alone
            (exit 2) unless it is the package's unedited example. With anything
            undecided it writes nothing and exits 2, and says what to do: an
            option below, a change to Synapse's or coturn's configuration, or a
            turnkeeper.yaml written by hand from the example.

            Example (a first run on a Debian host):
              apt install ./turnkeeper_0.1.0_amd64.deb
              turnkeeper init
              turnkeeper check && systemctl enable --now turnkeeper
            """
    )

    @Option(name: .customLong("config"), help: ArgumentHelp("Where to write turnkeeper.yaml.", valueName: "file"))
    var path = Configuration.defaultPath

    @Option(
        help: ArgumentHelp(
            "Synapse's configuration as Synapse is started with it (repeat: homeserver.yaml, then conf.d).",
            valueName: "path"))
    var synapseConfig: [String] = []

    @Option(help: ArgumentHelp("coturn's configuration file.", valueName: "file"))
    var turnserverConf = "/etc/turnserver.conf"

    @Option(help: ArgumentHelp("Prosody's main configuration file (its conf.d is read too).", valueName: "file"))
    var prosodyConfig = "/etc/prosody/prosody.cfg.lua"

    @Option(help: ArgumentHelp("coturn's realm, when turnserver.conf sets none.", valueName: "realm"))
    var realm: String?

    @Option(help: ArgumentHelp("Where each new secret is proven with an allocation.", valueName: "uri"))
    var verifyURI: String?

    @Option(help: ArgumentHelp("The group Synapse runs as, when it is not matrix-synapse.", valueName: "group"))
    var synapseGroup: String?

    @Option(help: ArgumentHelp("The systemd unit running Synapse, if not matrix-synapse.", valueName: "unit"))
    var synapseUnit: String?

    @Option(help: ArgumentHelp("How often to rotate (default 7d).", valueName: "duration"))
    var interval: DurationArgument?

    @Option(help: ArgumentHelp("Kept past the last credential's expiry (default 10m).", valueName: "duration"))
    var margin: DurationArgument?

    @Option(help: ArgumentHelp("How often the daemon probes TURN (default 5m).", valueName: "duration"))
    var probeInterval: DurationArgument?

    @Flag(help: "Print the configuration instead of writing it.")
    var print = false

    @Flag(
        help: ArgumentHelp(
            "Move coturn's static-auth-secret into its SQLite database, so rotations never restart coturn.",
            discussion: """
                One coturn restart, now (it drops the calls in progress: pick a quiet time). turnserver.conf is \
                backed up beside itself, the secret added to coturn's database (which switches to WAL then), its \
                lines removed, coturn restarted and an allocation with the secret proven; on a failure the file \
                is put back and coturn restarted on it. Then turnkeeper.yaml is written (or, if init wrote one \
                with store: config, rewritten) with store: sqlite. The way back is printed.
                """))
    var moveStaticSecret = false

    func run() async throws {
        let existing = try await Blocking.run { [path] in try Self.existingFile(path) }
        if moveStaticSecret && !print {
            if existing == .configured {
                try await moveForExistingConfiguration()
                return
            }
            try await moveBeforePlanning()
        }
        if existing == .configured {
            throw TurnkeeperError(
                .unwritableFile,
                "\(path) exists and is not the package's unedited example: init never overwrites a configuration. "
                    + "Edit it, or move it aside and run init again.")
        }
        var paths = HostSurvey.Paths(turnserverConf: turnserverConf, prosodyConfig: prosodyConfig)
        if !synapseConfig.isEmpty { paths.synapseConfig = synapseConfig }
        let choices = SetupPlan.Choices(
            realm: realm, verifyURI: verifyURI, synapseGroup: synapseGroup, synapseUnit: synapseUnit,
            interval: interval?.duration,
            margin: margin?.duration, probeInterval: probeInterval?.duration)
        let plan = try await Blocking.run { [path, paths] in
            SetupPlan(HostSurvey.read(paths), choices: choices, path: path)
        }

        // Values from the host's files (a realm, file names): escaped before they reach a terminal.
        let sections = [("found     ", plan.found), ("chose     ", plan.chose), ("to do     ", plan.notes)]
        for (label, lines) in sections + [("undecided ", plan.undecided)] {
            for line in lines { Swift.print(label + " " + ServerText.escaped(line, limit: 4000)) }
        }
        guard let text = plan.rendered() else {
            throw TurnkeeperError(
                .invalidConfiguration,
                "init could not decide \(plan.undecided.count) thing(s) above, so it wrote nothing. Settle them "
                    + "(turnkeeper help init lists the options) and run it again.")
        }
        if print {
            Swift.print("")
            Swift.print(text, terminator: "")
            return
        }
        let written = try await Blocking.run { [path] () throws -> Configuration in
            try Self.write(Array(text.utf8), to: path, replacing: existing == .shippedExample)
            do {
                return try Configuration.load(path)
            } catch {
                // Ours, just written: leave nothing behind that the next init would refuse to replace.
                unlink(path)
                throw error
            }
        }
        Swift.print(
            "wrote      \(path) (0600)" + (existing == .shippedExample ? ", in place of the package's example" : ""))
        // Everything `check` would stop at, said now and all at once, so that the next command passes.
        let blockers: [Checker.Finding]
        do {
            blockers = try await Host(written).check().filter { !$0.ok }
        } catch {
            let reason = (error as? TurnkeeperError)?.reason ?? "\(error)"
            Swift.print("blocker    " + ServerText.escaped("check could not read everything: \(reason)", limit: 4000))
            Swift.print("next       fix that, then: \(written.command("check")) && systemctl enable --now turnkeeper")
            return
        }
        for blocker in blockers {
            Swift.print("blocker    " + ServerText.escaped(blocker.summary, limit: 4000))
            if let fix = blocker.fix { Swift.print("  fix      " + ServerText.escaped(fix, limit: 4000)) }
        }
        Swift.print(
            blockers.isEmpty
                ? "next       \(written.command("check")) && systemctl enable --now turnkeeper"
                : "next       fix the \(blockers.count) point(s) above (check stops at each), then: "
                    + "\(written.command("check")) && systemctl enable --now turnkeeper")
    }

    // MARK: --move-static-secret

    /// No turnkeeper.yaml yet: the move from what the host has, before the plan that then chooses store: sqlite.
    private func moveBeforePlanning() async throws {
        var paths = HostSurvey.Paths(turnserverConf: turnserverConf, prosodyConfig: prosodyConfig)
        if !synapseConfig.isEmpty { paths.synapseConfig = synapseConfig }
        let choices = SetupPlan.Choices(
            realm: realm, verifyURI: verifyURI, synapseGroup: synapseGroup, synapseUnit: synapseUnit,
            interval: interval?.duration, margin: margin?.duration, probeInterval: probeInterval?.duration)
        let (plan, survey) = try await Blocking.run { [path, paths] in
            let survey = HostSurvey.read(paths)
            return (SetupPlan(survey, choices: choices, path: path), survey)
        }
        guard let configuration = plan.configuration else {
            for line in plan.undecided { Swift.print("undecided  " + ServerText.escaped(line, limit: 4000)) }
            throw TurnkeeperError(
                .invalidConfiguration,
                "init could not decide \(plan.undecided.count) thing(s) above, so nothing was moved or written. "
                    + "Settle them and run it again.")
        }
        guard case .config(let file) = configuration.coturn.store else {
            Swift.print("move       nothing to move: coturn takes no static-auth-secret from \(turnserverConf)")
            return
        }
        let database = (try? survey.coturn?.get().sqliteDatabase) ?? nil
        try await move(
            configuration, restart: file, database: database ?? Configuration.Coturn.Store.defaultDatabase)
    }

    /// A turnkeeper.yaml init wrote with store: config: the move, then the file rewritten with store: sqlite.
    private func moveForExistingConfiguration() async throws {
        let configuration = try await Blocking.run { [path] in try Configuration.load(path) }
        guard case .config(let file) = configuration.coturn.store else {
            Swift.print(
                "move       nothing to move: \(path) has coturn.store \(configuration.coturn.store.name), not config")
            return
        }
        let conf = configuration.coturn.configFile ?? Configuration.defaultTurnserverConf
        let database =
            try await Blocking.run { () -> String? in try? HostSurvey.readCoturn(conf).sqliteDatabase } ?? nil
        let target = database ?? Configuration.Coturn.Store.defaultDatabase
        try await move(configuration, restart: file, database: target)
        var updated = configuration
        updated.coturn.store = .sqlite(database: target)
        let text = updated.rendered(header: [
            "Rewritten by `turnkeeper init --move-static-secret`: coturn now reads its secret from \(target),",
            "so rotations never restart it. Edit freely; see docs/configuration.md.",
        ])
        try await Blocking.run { [path] in
            try AtomicFile.write(
                Array(text.utf8), to: path, permissions: 0o600, maximumPermissions: 0o600, existing: .replace)
            _ = try Configuration.load(path)
        }
        Swift.print("wrote      \(path) (0600): coturn.store sqlite \(target)")
        Swift.print(
            "next       `systemctl reload turnkeeper` if it runs. A ReadWritePaths=\(TrustedDirectory.split(conf).directory) "
                + "drop-in, if you added one for store: config, is no longer needed: remove it (`systemctl edit "
                + "turnkeeper`)")
    }

    private func move(_ configuration: Configuration, restart: Configuration.Coturn.ConfigFile, database: String)
        async throws
    {
        let move = StaticSecretMove(
            turnserverConf: configuration.coturn.configFile ?? Configuration.defaultTurnserverConf, database: database,
            realm: configuration.coturn.realm, verifyURI: configuration.coturn.verifyURI,
            restartCommand: restart.restartCommand, timeout: restart.restartTimeout,
            stateDirectory: configuration.rotation.stateDirectory)
        let outcome = try await move.run(say: { Swift.print("move       " + ServerText.escaped($0, limit: 4000)) })
        guard outcome.changed else {
            Swift.print("move       " + ServerText.escaped(outcome.wayBack, limit: 4000))
            return
        }
        Swift.print("way back   " + ServerText.escaped(outcome.wayBack, limit: 4000))
    }

    enum Existing: Equatable { case none, shippedExample, configured }

    /// Whether `path` holds a configuration, the package's example as shipped, or nothing.
    static func existingFile(_ path: String) throws(TurnkeeperError) -> Existing {
        guard access(path, F_OK) == 0 else { return .none }
        let contents = try FileContents.read(path, limit: 1 << 20)
        let digest = Hex.encode(Digest.sha256(contents.bytes))
        return ShippedExample.sha256.contains(digest) ? .shippedExample : .configured
    }

    static func write(_ bytes: [UInt8], to path: String, replacing: Bool) throws(TurnkeeperError) {
        let (directory, _) = TrustedDirectory.split(path)
        if access(directory, F_OK) != 0 && mkdir(directory, 0o700) != 0 {
            throw TurnkeeperError(
                .unwritableFile, "cannot create \(directory): \(errnoDescription(errno)). Create it (0700, root's).")
        }
        try AtomicFile.write(
            bytes, to: path, permissions: 0o600, maximumPermissions: 0o600, existing: replacing ? .replace : .refuse)
    }
}
