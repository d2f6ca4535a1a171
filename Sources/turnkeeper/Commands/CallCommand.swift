import ArgumentParser
import Foundation
import TurnkeeperCore
import TurnkeeperCredentials
import TurnkeeperProbe
import TurnkeeperSynapse
import TurnkeeperTURNClient

struct CallCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "call",
        abstract: "One side of a test call: a voice-like stream to a peer through TURN, with loss, RTT and jitter.",
        discussion: """
            Run it twice, on two machines (or two network namespaces), with the names swapped and the same \
            --rendezvous directory. Each side gets TURN credentials the way a Matrix client does, allocates a \
            relay, publishes its relayed address in the directory, permits the peer's and binds a channel to \
            it, then streams --rate packets a second of --size bytes for --duration and echoes the peer's \
            packets back. Each side reports what arrived of the peer's stream.

            With --direct there is no TURN: each side learns its reflexive address from the STUN server and \
            sends straight to the peer's (UDP hole punching). Behind a symmetric NAT that fails, which is why \
            calls need the relay.

            Credentials (one of):
              --homeserver URL --access-token-file F
                  Synapse's /voip/turnServer, as a Matrix client asks
              --secret-file F --uri URI
                  minted as Synapse mints them, for the user @NAME:turnkeeper.call

            Examples (the lab in docs/nat.md):
              ip netns exec tk-lab-alice turnkeeper call --name alice --peer bob \\
                  --rendezvous /run/call --homeserver http://203.0.113.20:8008 \\
                  --access-token-file alice.token
              ip netns exec tk-lab-bob turnkeeper call --name bob --peer alice \\
                  --rendezvous /run/call --homeserver http://203.0.113.20:8008 \\
                  --access-token-file bob.token

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

    @Option(help: ArgumentHelp("The homeserver's client API base URL.", valueName: "url"))
    var homeserver: String?

    @Option(
        name: .customLong("access-token-file"),
        help: ArgumentHelp("A file holding this side's Matrix access token.", valueName: "file"))
    var accessTokenFile: String?

    @Option(
        name: .customLong("secret-file"), help: ArgumentHelp("Mint credentials from this secret.", valueName: "file"))
    var secretFile: String?

    @Option(
        help: ArgumentHelp(
            "The TURN (or, with --direct, STUN) URI. Default: Synapse's first UDP turn: URI.", valueName: "uri"))
    var uri: String?

    @Flag(help: "Send straight to the peer's reflexive address, without TURN.")
    var direct = false

    @Option(help: ArgumentHelp("Packets a second.", valueName: "count"))
    var rate = 50

    @Option(help: ArgumentHelp("Bytes a packet (at least 16).", valueName: "bytes"))
    var size = 160

    @Option(help: ArgumentHelp("How long to stream, in Synapse's duration syntax.", valueName: "duration"))
    var duration = "5s"

    @Option(help: ArgumentHelp("Deadline for setting up and finding the peer.", valueName: "duration"))
    var timeout = "30s"

    @Option(name: .customLong("max-loss"), help: ArgumentHelp("Percent of loss that still passes.", valueName: "pct"))
    var maxLoss = 1.0

    @Flag(help: "Print the report as JSON.")
    var json = false

    func validate() throws {
        if (homeserver == nil) != (accessTokenFile == nil) {
            throw ValidationError("--homeserver and --access-token-file go together.")
        }
        if !direct && homeserver == nil && secretFile == nil {
            throw ValidationError("Give --homeserver with --access-token-file, or --secret-file with --uri.")
        }
        if (secretFile != nil || direct) && uri == nil && homeserver == nil {
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
        let streamFor = try SynapseDuration(parsing: duration, source: "--duration")
        let setup = try SynapseDuration(parsing: timeout, source: "--timeout")
        guard streamFor.milliseconds <= 3_600_000 else {
            throw TurnkeeperError(.invalidArgument, "--duration must be at most 1h")
        }
        let options = CallOptions(
            name: name, peer: peer, rendezvous: rendezvous, rate: rate, size: size,
            duration: .milliseconds(streamFor.milliseconds), setupTimeout: .milliseconds(setup.milliseconds),
            maxLossPercent: maxLoss)
        let (credentials, uris) = try await loadCredentials()
        let chosen = try pick(uris)
        let report =
            if direct {
                await CallParty.direct(uri: chosen, options: options)
            } else if let credentials {
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

    private func loadCredentials() async throws -> (TURNCredentials?, [String]) {
        if let homeserver, let accessTokenFile {
            let token = try FileContents.readValue(accessTokenFile, what: "a Matrix access token")
            guard
                case .credentials(let answer) = try await TurnServerClient.fetch(
                    homeserver: homeserver, accessToken: token)
            else {
                throw TurnkeeperError(
                    .checkFailed, "\(homeserver) hands out no TURN credentials (/voip/turnServer answered {}).")
            }
            return (TURNCredentials(username: answer.username, password: answer.password), answer.uris)
        }
        if let secretFile {
            let user = "@\(name):turnkeeper.call"
            try RESTUsername.validate(user: user, source: "--name")
            let loaded = try SecretFile.read(secretFile)
            let minted = try CredentialMinter(secret: loaded.secret).credential(
                user: user, lifetime: SynapseDuration(milliseconds: 3_600_000),
                nowMilliseconds: WallClock.nowMilliseconds())
            return (TURNCredentials(username: minted.username, password: minted.password), [])
        }
        return (nil, [])
    }

    /// --uri, else the first turn: URI over UDP that Synapse lists (media goes over UDP when it can).
    private func pick(_ uris: [String]) throws -> TURNURI {
        if let uri { return try parse(uri) }
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
