import ArgumentParser
import Glibc
import TurnkeeperConfiguration
import TurnkeeperCore
import TurnkeeperCrypto
import TurnkeeperExecution
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

    func run() async throws {
        let existing = try await Blocking.run { [path] in try Self.existingFile(path) }
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
        try await Blocking.run { [path] in
            try Self.write(Array(text.utf8), to: path, replacing: existing == .shippedExample)
            do {
                _ = try Configuration.load(path)
            } catch {
                // Ours, just written: leave nothing behind that the next init would refuse to replace.
                unlink(path)
                throw error
            }
        }
        Swift.print(
            "wrote      \(path) (0600)" + (existing == .shippedExample ? ", in place of the package's example" : ""))
        Swift.print("next       turnkeeper check; then systemctl enable --now turnkeeper")
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
