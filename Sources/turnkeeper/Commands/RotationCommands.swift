import ArgumentParser
import FoundationEssentials
import TurnkeeperChecks
import TurnkeeperConfiguration
import TurnkeeperCore
import TurnkeeperExecution
import TurnkeeperRotation
import TurnkeeperStores

/// `--config`, shared by the commands that act on turnkeeper.yaml.
struct ConfigurationOptions: ParsableArguments {
    @Option(name: .customLong("config"), help: ArgumentHelp("turnkeeper's configuration file.", valueName: "file"))
    var path = Configuration.defaultPath

    /// Off the cooperative pool: reading and parsing a file blocks.
    func load() async throws -> Configuration {
        let path = path
        return try await Blocking.run { try Configuration.load(path) }
    }

    /// The host the file describes, built once for the command.
    func host() async throws -> Host { Host(try await load()) }
}

struct RotateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rotate",
        abstract: "Rotate the shared secret now, without breaking a call or a credential already handed out.",
        discussion: """
            Steps, each saved before the next, so a run killed at any point is
            finished by the next:
              1 generate a new secret
              2 add it to coturn, which then accepts old and new
              3 verify: an allocation with it at coturn.verify_uri (if that fails,
                it is taken out again)
              4 switch every consumer, each saved on its own: Synapse (write its
                conf.d file, restart it, wait until it answers), then each app
                under consumers: (Prosody: reload through its admin socket;
                file: write it, run its command, check what it hands out)
              5 once the longest credential lifetime among them plus
                rotation.margin has passed, remove the old secret, and prove
                with an allocation that coturn refuses it
            Before step 1 everything checkable is checked (Synapse's effective
            config with turnkeeper's file in it, the files it writes, the
            schedule); nothing changes if a check fails. A first run adopts the
            secret Synapse uses now. Retirements that are due happen on every run.
            Only secrets turnkeeper generated or adopted are ever removed. Every
            app that signs with coturn's secret must be listed under consumers:
            before a retirement, or it stops working. See docs/rotation.md and
            docs/consumers.md.
            """
    )

    @OptionGroup var options: ConfigurationOptions

    @Flag(help: "Only finish a rotation in progress and retire what is due; start no new one.")
    var resume = false

    func run() async throws {
        // Two hosts with derived secrets: either way, this one is brought in line with the current epoch.
        try await options.host().rotation(.init(now: WallClock.nowSeconds, say: { print($0) }))
            .rotate(resume ? .resume : .rotate)
    }
}

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the rotation's phase, the secrets by fingerprint, and what is due when."
    )

    @OptionGroup var options: ConfigurationOptions

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        let host = try await options.host()
        let status = try await host.rotation(.init(now: WallClock.nowSeconds, say: { _ in })).status()
        var inventory: SecretInventory?
        var inventoryError: String?
        do {
            inventory = try await host.inventory()
        } catch {
            inventoryError = (error as? TurnkeeperError)?.reason ?? "\(error)"
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
            let report = StatusReport(status: status, inventory: inventory, inventoryError: inventoryError)
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
            return
        }
        print("phase:          \(status.phase)")
        print("current secret: \(status.current ?? "none (no rotation yet)")")
        if let age = status.currentAgeSeconds { print("age:            \(WallClock.spanString(seconds: age))") }
        if let pending = status.pending { print("pending secret: \(pending)") }
        for retiring in status.retiring {
            print("retiring:       \(retiring.fingerprint) at \(WallClock.utcString(seconds: retiring.retiresAt))")
            if let failed = retiring.failed { print("                retirement failed: \(failed)") }
        }
        if let last = status.lastRotation { print("last rotation:  \(WallClock.utcString(seconds: last))") }
        if let next = status.nextRotationDue { print("next due:       \(WallClock.utcString(seconds: next))") }
        if let result = status.lastResult { print("last result:    \(result)") }
        if let inventoryError { print("coturn accepts: not read: \(inventoryError)") }
        if let accepted = inventory?.accepted {
            print("coturn accepts:")
            for entry in accepted {
                let owner = entry.managed ? "turnkeeper's" : "NOT turnkeeper's, never removed by it"
                let users = entry.usedBy.isEmpty ? "no configured consumer" : entry.usedBy.joined(separator: ", ")
                print("  \(entry.fingerprint)  \(entry.origin); \(owner); used by \(users)")
            }
        }
        for consumer in inventory?.consumers ?? [] {
            let secret = consumer.fingerprint.map { "signs with \($0)" } ?? "unknown"
            print("consumer:       \(consumer.label): \(secret) (\(consumer.source))")
        }
    }
}

/// `status --json`: the rotation's status with the inventory beside its keys, in one object (the schema
/// `status` has always printed).
struct StatusReport: Encodable {
    let status: RotationStatus
    let inventory: SecretInventory?
    let inventoryError: String?

    private enum Keys: String, CodingKey { case inventory, inventoryError }

    func encode(to encoder: any Encoder) throws {
        try status.encode(to: encoder)
        var container = encoder.container(keyedBy: Keys.self)
        try container.encodeIfPresent(inventory, forKey: .inventory)
        try container.encodeIfPresent(inventoryError, forKey: .inventoryError)
    }
}

struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Audit Synapse's and coturn's configs together for what breaks calls. Changes nothing.",
        discussion: """
            Checks: coturn accepts the secret Synapse uses; Synapse has a secret, turn_uris that parse and a \
            usable turn_user_lifetime; every consumer (Synapse and those under consumers:) and the secret it \
            signs with; every secret coturn accepts, where it comes from, and that some consumer uses it; no inline-plus-path conflict; no conf.d file overriding turnkeeper's; \
            database rows under coturn's realm; static-auth-secret lines in turnserver.conf (coturn.config_file, \
            else /etc/turnserver.conf), which coturn accepts beside any database; and, when coturn.config_file \
            is set, use-auth-secret without lt-cred-mech, realm (syslog, as Debian ships it, is fine: turnkeeper \
            never signals coturn), \
            denied-peer-ip present. Everything is checked before anything is reported; nothing is changed.

            check reads files. What only coturn's behaviour can tell (does it really refuse private peers, \
            enforce quotas, hand out the address its relays use?) is `turnkeeper audit`'s.

            Exit status: 0 clean, 1 problems found, 2 could not read.
            """
    )

    @OptionGroup var options: ConfigurationOptions

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        let findings = try await options.host().check()
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
            print(String(decoding: try encoder.encode(findings), as: UTF8.self))
        } else {
            for finding in findings {
                print(finding.ok ? "ok       \(finding.summary)" : "PROBLEM  \(finding.summary)")
                if let fix = finding.fix, !finding.ok { print("         Fix: \(fix)") }
            }
            print(
                "Not checked here: what coturn does (relaying to private peers, quotas, the relayed address); the "
                    + "coturn advisories above come from its package version. `turnkeeper audit` tests what it does.")
        }
        if findings.contains(where: { !$0.ok }) { throw ExitCode.failure }
    }
}
