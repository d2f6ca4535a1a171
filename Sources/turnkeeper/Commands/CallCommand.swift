import ArgumentParser
import FoundationEssentials
import Glibc
import Synchronization
import TurnkeeperCall
import TurnkeeperCore
import TurnkeeperCredentialSource
import TurnkeeperCredentials
import TurnkeeperProbe
import TurnkeeperSTUN
import TurnkeeperTURNClient
import UnixSignals

struct CallCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "call",
        abstract: "One side of a test call: a voice-like stream to a peer through TURN, with loss, RTT and jitter.",
        usage: """
            turnkeeper call --name <name> --peer <name> --rendezvous <dir>
                     [<options>]
            """,
        discussion: """
            Run it twice, on two machines (or two network namespaces), with the names swapped and the same \
            --rendezvous directory. Each side gets TURN credentials the way a Matrix client does, allocates a \
            relay, publishes its relayed address in the directory, permits the peer's and binds a channel to \
            it, then streams --rate packets a second of --size bytes for --duration and echoes the peer's \
            packets back. Each side reports what arrived of the peer's stream.

            With --direct there is no TURN: each side learns its reflexive address from the STUN server and \
            sends straight to the peer's (UDP hole punching). Behind a symmetric NAT that fails, which is why \
            calls need the relay.

            Address families: a relay reaches peers of its own family only. Each side takes the server's \
            default relay (IPv4 for coturn) unless --relay-family asks for one; a side that reaches the server \
            over IPv6 may still ask for an IPv4 relay, and an IPv4-only side for an IPv6 one.

            Credentials (one of):
              --homeserver URL --access-token-file F
                  Synapse's /voip/turnServer, as a Matrix client asks
              --synapse-config PATH ...
                  Synapse's own config: its secret and its turn_uris
              --secret-file F --uri URI
                  minted as Synapse mints them, for the user @NAME:turnkeeper.call
              --username U --password-file P --uri URI
                  a credential a client got

            Examples (the lab in docs/nat.md):
              ip netns exec tk-lab-alice turnkeeper call --name alice --peer bob \\
                  --rendezvous /run/call --homeserver http://203.0.113.20:8008 \\
                  --access-token-file alice.token
              ip netns exec tk-lab-bob turnkeeper call --name bob --peer alice \\
                  --rendezvous /run/call --homeserver http://203.0.113.20:8008 \\
                  --access-token-file bob.token

            Ctrl-C (or SIGTERM) ends the stream early, as hanging up does: the other side stops too, each says \
            how many packets it sent, and the other judges its loss against that. A second Ctrl-C ends the \
            process at once. While they stream, each side's file in --rendezvous says every second how many \
            packets it has sent and received: to watch a call across a change (a secret rotation), give a long \
            --duration, follow those counts, and hang up once the change is over.

            Exit status: 0 the stream arrived with less than --max-loss percent lost, \
            1 it did not, 2 usage.
            """
    )

    @Option(help: ArgumentHelp("This side's name in the rendezvous directory.", valueName: "name"))
    var name: String

    @Option(help: ArgumentHelp("The other side's name.", valueName: "name"))
    var peer: String

    @Option(help: ArgumentHelp("A directory both sides can read and write.", valueName: "dir"))
    var rendezvous: String

    @OptionGroup(title: "Credentials")
    var credentials: CredentialOptions

    @Option(
        help: ArgumentHelp(
            "The TURN (or, with --direct, STUN) URI. Default: Synapse's first UDP turn: URI.", valueName: "uri"),
        transform: TURNURI.parse)
    var uri: TURNURI?

    @Flag(help: "Send straight to the peer's reflexive address, without TURN.")
    var direct = false

    @Option(
        name: .customLong("relay-family"),
        help: ArgumentHelp(
            "The relay family to ask for: default (ask for none, as most clients; coturn gives IPv4 unless "
                + "allocation-default-address-family says otherwise), ipv4 or ipv6 (REQUESTED-ADDRESS-FAMILY). "
                + "Both sides need relays of one family.",
            valueName: "family"))
    var relayFamily: RelayFamily = .default

    enum RelayFamily: String, ExpressibleByArgument, CaseIterable {
        case `default`, ipv4, ipv6

        var family: TransportAddress.Family? {
            switch self {
            case .default: nil
            case .ipv4: .ipv4
            case .ipv6: .ipv6
            }
        }
    }

    @Option(help: ArgumentHelp("Packets a second.", valueName: "count"))
    var rate = 50

    @Option(help: ArgumentHelp("Bytes a packet (at least 16).", valueName: "bytes"))
    var size = 160

    @Option(
        help: ArgumentHelp(
            "How long to stream, in Synapse's duration syntax (at most 1h; Ctrl-C ends it early).",
            valueName: "duration"))
    var duration = DurationArgument(argument: "5s")!

    @Option(help: ArgumentHelp("Deadline for setting up and finding the peer.", valueName: "duration"))
    var timeout = DurationArgument(argument: "30s")!

    @Option(name: .customLong("max-loss"), help: ArgumentHelp("Percent of loss that still passes.", valueName: "pct"))
    var maxLoss = 1.0

    @Flag(help: "Print the report as JSON.")
    var json = false

    func validate() throws {
        if !direct, case .none = credentials.source() {
            throw ValidationError("Give --homeserver with --access-token-file, or --secret-file with --uri.")
        }
        if uri == nil && !credentials.listsURIs {
            throw ValidationError("Give --uri: the TURN server to use.")
        }
        if !(1...1000).contains(rate) { throw ValidationError("--rate must be 1 to 1000.") }
        if !(16...1400).contains(size) { throw ValidationError("--size must be 16 to 1400.") }
        if name == peer { throw ValidationError("--name and --peer must differ.") }
        for (option, value) in [("--name", name), ("--peer", peer)] where !Self.isSimpleName(value) {
            throw ValidationError(
                "\(option) must be 1 to \(Self.maximumNameLength) letters, digits, \"-\" or \"_\": it names a file "
                    + "in --rendezvous, and with --secret-file the TURN user @NAME:turnkeeper.call.")
        }
    }

    /// Short enough that @NAME:turnkeeper.call stays far below coturn's username limit.
    static let maximumNameLength = 64

    static func isSimpleName(_ text: String) -> Bool {
        (1...maximumNameLength).contains(text.utf8.count)
            && text.utf8.allSatisfy { byte in
                (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
                    || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
            }
    }

    func run() async throws {
        guard duration.duration.milliseconds <= 3_600_000 else {
            throw TurnkeeperError(.invalidArgument, "--duration must be at most 1h")
        }
        // SIGINT or SIGTERM: the stream ends early (the peer is told, and stops too) and the report is still
        // made. Both signals then go back to the system, so a second one of either ends the process at once.
        let stopped = Atomic<Bool>(false)
        let signals = await UnixSignalsSequence(trapping: .sigint, .sigterm)
        let watcher = Task {
            for await _ in signals {
                stopped.store(true, ordering: .relaxed)
                signal(SIGINT, SIG_DFL)
                signal(SIGTERM, SIG_DFL)
            }
        }
        defer { watcher.cancel() }
        let options = CallOptions(
            name: name, peer: peer, rendezvous: rendezvous, rate: rate, size: size, duration: duration.value,
            setupTimeout: timeout.value, maxLossPercent: maxLoss, relayFamily: relayFamily.family,
            stopRequested: { stopped.load(ordering: .relaxed) })
        let user = "@\(name):turnkeeper.call"
        let credentialSource = credentials.source()
        switch credentialSource {
        case .secretFile, .synapseConfig: try RESTUsername.validate(user: user, source: "--name")
        default: break
        }
        let source = try await credentialSource.resolve(user: user, lifetime: SynapseDuration(milliseconds: 3_600_000))
        source.warnings.forEach(Console.warning)
        let chosen = try pick(source.uris)
        let report =
            if direct {
                await CallParty.direct(uri: chosen, options: options)
            } else if let credentials = source.credentials {
                await CallParty.relayed(uri: chosen, credentials: credentials, options: options)
            } else {
                throw TurnkeeperError(.invalidArgument, "no TURN credentials")
            }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(Self.render(report))
        }
        if !report.passed { throw ExitCode.failure }
    }

    /// --uri, else the first turn: URI over UDP that Synapse lists (media goes over UDP when it can).
    private func pick(_ uris: [String]) throws -> TURNURI {
        if let uri { return uri }
        let parsed = try uris.map(parse)
        guard let choice = parsed.first(where: { $0.isTURN && $0.transport == .udp }) ?? parsed.first else {
            throw TurnkeeperError(.checkFailed, "Synapse lists no turn_uris; give --uri.")
        }
        return choice
    }

    private func parse(_ text: String) throws -> TURNURI {
        do {
            return try TURNURI(text)
        } catch {
            throw TurnkeeperError(.invalidArgument, error.description)
        }
    }

    static func render(_ report: CallReport) -> String {
        var lines: [String] = []
        let via = report.mode == .relayed ? "through the relay at \(report.uri)" : "directly, without TURN"
        lines.append("\(report.name) → \(report.peer), \(via)")
        if let local = report.local, let reflexive = report.reflexive {
            let nat = report.behindNAT == true ? " (behind NAT)" : ""
            lines.append("  this host \(local), seen by the server as \(reflexive)\(nat)")
        }
        if let relayed = report.relayed { lines.append("  relayed address \(relayed)") }
        if let peer = report.peerAddress { lines.append("  sending to \(peer)") }
        if report.stoppedEarly == true { lines.append("  stopped early (Ctrl-C or SIGTERM)") }
        lines.append(
            "  sent \(report.sent); from \(report.peer): \(report.received) of \(report.expected) arrived "
                + "(\(report.lossPercent)% lost)")
        if let rtt = report.rttMilliseconds {
            lines.append("  round trip min/median/max \(rtt.min)/\(rtt.median)/\(rtt.max) ms")
        }
        if let jitter = report.jitterMilliseconds { lines.append("  jitter \(jitter) ms") }
        lines.append(report.passed ? "PASS: the call works" : "FAIL: \(report.problem ?? "the call does not work")")
        return lines.joined(separator: "\n")
    }
}
