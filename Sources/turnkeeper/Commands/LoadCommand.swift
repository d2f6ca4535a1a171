import ArgumentParser
import FoundationEssentials
import Glibc
import Synchronization
import TurnkeeperCore
import TurnkeeperCredentials
import TurnkeeperProbe
import TurnkeeperTURNClient

/// Set by SIGINT: every call stops its traffic and releases its allocations.
private let interrupted = Atomic<Bool>(false)

struct LoadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load",
        abstract: "Measure how many calls a TURN server carries, with calls' own traffic.",
        usage: "turnkeeper load <uri> [<credentials>] (--calls <n>|--ramp <list>)",
        discussion: """
            Each call is two allocations relaying to each other over channels, as
            two parties behind symmetric NAT do, with voice traffic both ways:
            50 packets a second of 160 bytes. A step sets its calls up, runs them
            for --duration, releases every allocation and is measured on its own:
            calls up, setup latency, loss, jitter (RFC 3550) and one-way transit
            percentiles, packets a second, refusals by code, this process's CPU
            (so that a result never measures the client) and, with --coturn-pid,
            coturn's CPU and memory.

            --ramp raises the calls step by step and stops at the first step
            that refuses an allocation, loses more than 1%, or passes 30 ms of
            jitter p99, 150 ms of one-way transit p99 or 1 s of setup p99, and
            says which limit it hit and the coturn option that governs it
            (user-quota, total-quota, min-port..max-port, bps-capacity and
            max-bps).

            The URI must be given; only that server is contacted, and the only
            peers are the run's own relays. Credentials are required:
            --secret-file mints one user per call; --username and
            --password-file share one credential (so user-quota applies to all).
            Ctrl-C stops every call and releases its allocations.

            Not built yet: video bursts, refreshes for steps over 4 minutes.

            Exit status: 0 every step carried its calls, 1 a limit was reached,
            2 usage or configuration error.

            Example:
              turnkeeper load turn:turn.example.org?transport=udp \\
                  --secret-file /etc/turnkeeper/secret --ramp 10,20,40,80
            """
    )

    @Argument(help: ArgumentHelp("The turn: or turns: URI to load.", valueName: "uri"), transform: TURNURI.parse)
    var uri: TURNURI

    @Option(help: ArgumentHelp("The shared secret; one user is minted per call.", valueName: "file"))
    var secretFile: String?

    @Option(help: ArgumentHelp("A credential's username, shared by every call.", valueName: "username"))
    var username: String?

    @Option(help: ArgumentHelp("The file holding that credential's password.", valueName: "file"))
    var passwordFile: String?

    @Option(help: ArgumentHelp("Calls at once (one step).", valueName: "n"))
    var calls: Int?

    @Option(help: ArgumentHelp("Calls at each step, such as 10,20,40,80.", valueName: "list"))
    var ramp: String?

    @Option(help: ArgumentHelp("How long each step runs (at most 4m).", valueName: "duration"))
    var duration = DurationArgument(argument: "20s")!

    @Option(help: ArgumentHelp("voice (50 packets/s of 160 bytes each way).", valueName: "profile"))
    var profile = "voice"

    @Option(help: ArgumentHelp("coturn's PID, for its CPU and memory.", valueName: "pid"))
    var coturnPID: Int32?

    @Option(name: .customLong("ca-file"), help: ArgumentHelp("Also trust these CAs for turns:.", valueName: "file"))
    var caFile: String?

    @Option(help: ArgumentHelp("Write a plot of loss, jitter and setup against calls (SVG).", valueName: "file"))
    var plot: String?

    @Option(help: ArgumentHelp("The most loss a step may have, in percent (default 1).", valueName: "percent"))
    var maxLoss: Double = 1

    @Option(help: ArgumentHelp("The most jitter p99 a step may have, in ms (default 30).", valueName: "ms"))
    var maxJitter: Double = 30

    @Option(help: ArgumentHelp("The most one-way transit p99, in ms (default 150).", valueName: "ms"))
    var maxTransit: Double = 150

    @Option(help: ArgumentHelp("The most setup p99, in ms (default 1000).", valueName: "ms"))
    var maxSetup: Double = 1000

    @Flag(help: "Print the report as JSON.")
    var json = false

    var steps: [Int] {
        if let calls { return [calls] }
        return (ramp ?? "").split(separator: ",").compactMap { Int($0.filter { $0 != " " }) }
    }

    func validate() throws {
        guard uri.scheme == .turn || uri.scheme == .turns else {
            throw ValidationError("load needs a turn: or turns: URI: a stun: server relays nothing.")
        }
        guard (calls == nil) != (ramp == nil) else { throw ValidationError("Give --calls N or --ramp LIST, not both.") }
        let steps = steps
        guard !steps.isEmpty, steps.allSatisfy({ (1...2000).contains($0) }), steps == steps.sorted() else {
            throw ValidationError("--calls and --ramp take 1 to 2000 calls; a ramp's steps rise, such as 10,20,40.")
        }
        guard secretFile != nil || (username != nil && passwordFile != nil) else {
            throw ValidationError(
                "load needs credentials: --secret-file (one user per call), or --username with --password-file.")
        }
        guard profile == "voice" else {
            throw ValidationError("--profile: only voice is built so far (video bursts are not).")
        }
        let seconds = duration.value.components.seconds
        guard (1...240).contains(seconds) else {
            throw ValidationError("--duration must be 1s to 4m: longer steps would need permission refreshes.")
        }
    }

    func run() async throws {
        let credentials: @Sendable (Int) -> TURNCredentials
        if let secretFile {
            let loaded = try SecretFile.read(secretFile)
            loaded.warnings.forEach(Console.warning)
            let minter = try CredentialMinter(secret: loaded.secret)
            let now = WallClock.nowMilliseconds()
            var minted: [TURNCredentials] = []
            for index in 0..<(steps.max() ?? 1) {
                let credential = minter.credential(
                    user: "@turnkeeper-load-\(index):localhost", lifetime: SynapseDuration(milliseconds: 3_600_000),
                    nowMilliseconds: now)
                minted.append(TURNCredentials(username: credential.username, password: credential.password))
            }
            let all = minted
            credentials = { all[$0] }
        } else {
            let password = try FileContents.readValue(passwordFile!, what: "a TURN password")
            let shared = TURNCredentials(username: username!, password: password)
            credentials = { _ in shared }
        }
        let endpoint = try await uri.endpoint()
        signal(SIGINT) { _ in interrupted.store(true, ordering: .relaxed) }
        var thresholds = LoadThresholds()
        thresholds.lossPercent = maxLoss
        thresholds.jitterMs = maxJitter
        thresholds.transitMs = maxTransit
        thresholds.setupMs = maxSetup
        let options = LoadOptions(
            credentials: credentials, tls: TLSOptions(caFile: caFile), steps: steps, stepDuration: duration.value,
            thresholds: thresholds, coturnPID: coturnPID)
        let report = await LoadRunner.run(uri, endpoint: endpoint, options: options) {
            interrupted.load(ordering: .relaxed)
        }
        if let plot {
            let (directory, name) = TrustedDirectory.split(plot)
            try TrustedDirectory(directory, for: plot).write(
                Array(LoadRenderer().svg(report).utf8), to: name, permissions: 0o644, maximumPermissions: 0o644,
                group: nil, existing: .refuse)
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(LoadRenderer().render(report))
        }
        if interrupted.load(ordering: .relaxed) {
            Console.warning("interrupted: every allocation was released; the last step is partial.")
        }
        if report.limit != nil { throw ExitCode.failure }
    }
}
