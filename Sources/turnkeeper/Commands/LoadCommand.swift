import ArgumentParser
import FoundationEssentials
import Glibc
import Synchronization
import TurnkeeperCore
import TurnkeeperCredentials
import TurnkeeperLoad
import TurnkeeperProbe
import TurnkeeperTURNClient
import UnixSignals

struct LoadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load",
        abstract: "Measure how many calls a TURN server carries, with calls' own traffic.",
        usage: "turnkeeper load <uri> <credentials> (--calls <n>|--ramp <list>)",
        discussion: """
            Each call is two allocations relaying to each other over channels, as
            two parties behind symmetric NAT do, with its profile's traffic both
            ways, paced without drift:
              voice   50 packets a second of 160 bytes (Opus at 20 ms);
              video   --bitrate at --frame-rate, each frame's bytes sent at
                      once in packets of at most 1,200 bytes;
              custom  --packet-rate packets a second of --packet-size bytes.
            Calls refresh their allocations, permissions (every 4 minutes) and
            channels (every 9 minutes) as browsers do, so steps may run an hour.

            A step adds its calls to the running ones and is measured on its
            own once they are up: calls up, allocations a second, setup latency,
            loss, jitter (RFC 3550) and one-way transit percentiles, packets a
            second, refusals by code, this process's CPU (a client near its
            cores' limit is named as the limit, not blamed on coturn) and
            coturn's CPU and memory: --coturn-pid, or found when the server is
            this machine and one turnserver runs here.

            --ramp raises the calls step by step and stops at the first step
            that hits a limit, and says which and the coturn option that
            governs it (user-quota, total-quota, min-port..max-port,
            bps-capacity, max-bps): an allocation refused, a call dropped, a
            refresh failed, this client saturated (at its cores' limit, or so
            far behind that packets were too late to send), loss over
            --max-loss, packets held back, jitter, transit or setup over
            --max-jitter, --max-transit or --max-setup. docs/load.md has all.

            The URI must be given; only that server (and with --homeserver, the
            homeserver) is contacted, and the only peers are the run's own
            relays. Credentials are required:
            --secret-file and --synapse-config mint one user per call; a
            --username with --password-file, or --homeserver's, is shared by
            every call (so user-quota applies to all). Ctrl-C (or SIGTERM)
            stops sending within a quarter of a second (a second when this
            client is saturated) and releases every allocation, within about
            --timeout once requests in flight end; a second Ctrl-C ends it
            without releasing.

            Exit status: 0 every step carried its calls, 1 a limit was reached
            or the run was interrupted, 2 usage or configuration error.

            Example:
              turnkeeper load 'turn:turn.example.org?transport=udp' \\
                  --secret-file /etc/turnkeeper/secret --ramp 10,20,40,80
            """
    )

    @Argument(help: ArgumentHelp("The turn: or turns: URI to load.", valueName: "uri"), transform: TURNURI.parse)
    var uri: TURNURI

    @OptionGroup(title: "Credentials")
    var credentials: CredentialOptions

    @Option(help: ArgumentHelp("Calls at once (one step).", valueName: "n"))
    var calls: Int?

    @Option(help: ArgumentHelp("Calls at each step, such as 10,20,40,80.", valueName: "list"))
    var ramp: String?

    @Option(help: ArgumentHelp("How long each step runs (at most 1h).", valueName: "duration"))
    var duration = DurationArgument(argument: "20s")!

    @Option(help: ArgumentHelp("The traffic of each call.", valueName: "profile"))
    var profile = ProfileName.voice

    @Option(help: ArgumentHelp("video: bits a second, such as 800k or 2.5m.", valueName: "rate"))
    var bitrate = BitRate(argument: "1500k")!

    @Option(help: ArgumentHelp("video: frames a second (1 to 60).", valueName: "n"))
    var frameRate = 30

    @Option(help: ArgumentHelp("custom: packets a second (1 to 1000).", valueName: "n"))
    var packetRate = 50

    @Option(help: ArgumentHelp("custom: bytes a packet (16 to 1200).", valueName: "bytes"))
    var packetSize = 160

    // For coturn's permission-lifetime and channel-lifetime shortened in tests; RFC 8656 fixes them.
    @Option(help: .private)
    var permissionRefresh = DurationArgument(argument: "4m")!

    @Option(help: .private)
    var channelRefresh = DurationArgument(argument: "9m")!

    @Option(help: ArgumentHelp("coturn's PID, for its CPU and memory (found when local).", valueName: "pid"))
    var coturnPID: Int32?

    @Option(
        name: .customLong("ca-file"),
        help: ArgumentHelp("Also trust these CAs for turns: and an https homeserver.", valueName: "file"))
    var caFile: String?

    @Option(help: ArgumentHelp("How long a call may take to come up.", valueName: "duration"))
    var timeout = DurationArgument(argument: "5s")!

    @Option(help: ArgumentHelp("Write a plot of loss, jitter and setup against calls (SVG).", valueName: "file"))
    var plot: String?

    @Option(help: ArgumentHelp("The most loss a step may have, in percent.", valueName: "percent"))
    var maxLoss: Double = 1

    @Option(help: ArgumentHelp("The most jitter p99 a step may have, in ms.", valueName: "ms"))
    var maxJitter: Double = 30

    @Option(help: ArgumentHelp("The most one-way transit p99 a step may have, in ms.", valueName: "ms"))
    var maxTransit: Double = 150

    @Option(help: ArgumentHelp("The most setup p99 a step may have, in ms.", valueName: "ms"))
    var maxSetup: Double = 1000

    @Option(
        help: ArgumentHelp(
            "The most packets a step may find too late to send, in percent of those due: beyond it, this client "
                + "is saturated.", valueName: "percent"))
    var maxLate: Double = 1

    @Flag(help: "Print the report as JSON.")
    var json = false

    /// The calls at each step; nil when --ramp holds something that is not a number.
    var steps: [Int]? {
        if let calls { return [calls] }
        let parsed = (ramp ?? "").split(separator: ",", omittingEmptySubsequences: false).map {
            Int($0.filter { $0 != " " })
        }
        return parsed.contains(nil) ? nil : parsed.compactMap { $0 }
    }

    func validate() throws {
        guard uri.scheme == .turn || uri.scheme == .turns else {
            throw ValidationError("load needs a turn: or turns: URI: a stun: server relays nothing.")
        }
        guard (calls == nil) != (ramp == nil) else { throw ValidationError("Give --calls N or --ramp LIST, not both.") }
        guard let steps, !steps.isEmpty, steps.allSatisfy({ (1...2000).contains($0) }),
            zip(steps, steps.dropFirst()).allSatisfy({ $0 < $1 })
        else {
            throw ValidationError(
                "--calls and --ramp take 1 to 2000 calls; a ramp is numbers that rise, such as 10,20,40.")
        }
        guard [maxLoss, maxJitter, maxTransit, maxSetup, maxLate].allSatisfy({ $0.isFinite && $0 >= 0 }) else {
            throw ValidationError(
                "--max-loss, --max-jitter, --max-transit, --max-setup and --max-late take numbers of 0 or more.")
        }
        if case .none = credentials.source() {
            throw ValidationError(
                "load needs credentials: --secret-file or --synapse-config (one user per call), or a shared one: "
                    + "--username with --password-file, or --homeserver with --access-token-file.")
        }
        guard (1...60).contains(frameRate), (1...1000).contains(packetRate), (16...1200).contains(packetSize) else {
            throw ValidationError("--frame-rate takes 1 to 60, --packet-rate 1 to 1000, --packet-size 16 to 1200.")
        }
        guard (1...3600).contains(duration.value.components.seconds) else {
            throw ValidationError("--duration must be 1s to 1h.")
        }
        guard (1...60).contains(timeout.value.components.seconds) else {
            throw ValidationError("--timeout must be 1s to 60s.")
        }
        guard permissionRefresh.value >= .seconds(1), channelRefresh.value >= .seconds(1) else {
            throw ValidationError("refresh intervals must be at least 1s.")
        }
    }

    func run() async throws {
        let steps = steps ?? []
        // The plot's place is checked before the run too, so that an hour's run never ends in a refusal to write it.
        if let plot {
            let (directory, name) = TrustedDirectory.split(plot)
            if try TrustedDirectory(directory, for: plot).checkReplaceable(name) {
                throw TurnkeeperError(
                    .invalidArgument, "--plot \(plot) exists; give a new file (a plot never overwrites one).")
            }
        }
        // Valid for the whole run: every step's setup and window, and ten minutes more.
        let runSeconds = Int64(steps.count) * (duration.value.components.seconds + timeout.value.components.seconds + 2)
        let users = (0..<(steps.max() ?? 1)).map { "@turnkeeper-load-\($0):localhost" }
        let minted = try await credentials.source(caFile: caFile)
            .resolve(users: users, lifetime: SynapseDuration(milliseconds: (runSeconds + 600) * 1000))
        minted.warnings.forEach(Console.warning)
        guard minted.credentials.count == users.count else {
            throw TurnkeeperError(.checkFailed, "the credential source gave no credentials.")
        }
        if !minted.perUser, let expiry = minted.expiry, expiry < WallClock.nowMilliseconds() / 1000 + runSeconds {
            Console.warning(
                "the shared credential expires before the run can end: refreshes after that are refused (401). "
                    + "Use --secret-file or --synapse-config, whose credentials last the run.")
        }
        if let coturnPID {
            let name = await LoadRunner.processName(coturnPID)
            if name == nil {
                Console.warning("--coturn-pid \(coturnPID): no such process here, so coturn's CPU is not reported.")
            } else if name != "turnserver" {
                Console.warning("--coturn-pid \(coturnPID) is not a turnserver process: its CPU is not coturn's.")
            }
        }
        let all = minted.credentials
        let credentials: @Sendable (Int) -> TURNCredentials = { all[$0] }
        let endpoint = try await uri.endpoint()
        var coturnPID = coturnPID
        if coturnPID == nil, let found = await LoadRunner.localCoturn(serving: endpoint) {
            coturnPID = found
            Console.note("coturn runs on this machine (turnserver, PID \(found)): its CPU and memory are reported.")
        }
        // SIGINT or SIGTERM: every call stops its traffic and releases its allocations. The signal then goes back
        // to the system, so a second Ctrl-C ends the process at once.
        let interrupted = StopFlag()
        let signals = await UnixSignalsSequence(trapping: .sigint, .sigterm)
        let watcher = Task {
            for await received in signals {
                interrupted.stop()
                signal(received.rawValue, SIG_DFL)
            }
        }
        defer { watcher.cancel() }
        var thresholds = LoadThresholds()
        thresholds.lossPercent = maxLoss
        thresholds.latePercent = maxLate
        thresholds.jitterMs = maxJitter
        thresholds.transitMs = maxTransit
        thresholds.setupMs = maxSetup
        let loadProfile: LoadProfile =
            switch profile {
            case .voice: .voice
            case .video: .video(bitsPerSecond: bitrate.bitsPerSecond, framesPerSecond: frameRate)
            case .custom: .custom(packetsPerSecond: packetRate, packetSize: packetSize)
            }
        let options = LoadOptions(
            credentials: credentials, sharedCredentials: !minted.perUser, tls: TLSOptions(caFile: caFile),
            steps: steps, stepDuration: duration.value, profile: loadProfile, thresholds: thresholds,
            coturnPID: coturnPID, setupTimeout: timeout.value, permissionRefresh: permissionRefresh.value,
            channelRefresh: channelRefresh.value)
        let stepText = duration.text
        let report = await LoadRunner.run(
            uri, endpoint: endpoint, options: options,
            measuring: { calls, up in Console.note("\(up) of \(calls) call(s) up; measuring for \(stepText).") }
        ) { interrupted.stopped }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(LoadRenderer().render(report))
        }
        if let plot {
            let (directory, name) = TrustedDirectory.split(plot)
            try TrustedDirectory(directory, for: plot).write(
                Array(LoadRenderer().svg(report).utf8), to: name, permissions: 0o644, maximumPermissions: 0o644,
                group: nil, existing: .refuse)
        }
        if report.releasesUnconfirmed > 0 {
            Console.warning(
                "\(report.releasesUnconfirmed) allocation(s) were not confirmed released: they stay on coturn until "
                    + "their lifetime ends (10 minutes by default).")
        }
        if report.interrupted {
            Console.warning("interrupted: the last step ran only in part and was not judged.")
            throw ExitCode.failure
        }
        if report.limit != nil { throw ExitCode.failure }
    }
}

extension LoadCommand {
    enum ProfileName: String, ExpressibleByArgument, CaseIterable {
        case voice, video, custom
    }

    /// A bit rate: digits, optionally with a decimal part and k or m; 16 kbit/s to 50 Mbit/s.
    struct BitRate: ExpressibleByArgument, Sendable {
        let text: String
        let bitsPerSecond: Int

        init?(argument: String) {
            let lower = argument.lowercased()
            let scale: Double = lower.hasSuffix("k") ? 1e3 : lower.hasSuffix("m") ? 1e6 : 1
            let digits = scale == 1 ? lower : String(lower.dropLast())
            guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
                digits.count <= 12, let number = Double(digits), case let bits = number * scale,
                (16_000...50_000_000).contains(bits)
            else { return nil }
            text = argument
            bitsPerSecond = Int(bits)
        }

        var defaultValueDescription: String { text }
    }
}

/// Set once, read from any thread: a Ctrl-C seen by the signal watcher, polled by every call of a load.
final class StopFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    func stop() { flag.store(true, ordering: .relaxed) }
    var stopped: Bool { flag.load(ordering: .relaxed) }
}
