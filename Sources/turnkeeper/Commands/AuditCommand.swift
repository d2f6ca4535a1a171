import ArgumentParser
import FoundationEssentials
import Glibc
import TurnkeeperAudit
import TurnkeeperCore
import TurnkeeperCredentialSource
import TurnkeeperCredentials
import TurnkeeperProbe
import TurnkeeperSTUN
import TurnkeeperTURNClient

/// A STUN server's IPv4 address and port, for --reflector and --data-peer.
struct ReflectorArgument: ExpressibleByArgument {
    let address: TransportAddress
    init?(argument: String) {
        guard let colon = argument.lastIndex(of: ":"), let port = UInt16(argument[argument.index(after: colon)...]),
            port > 0, let address = TransportAddress(ipv4: String(argument[..<colon]), port: port)
        else { return nil }
        self.address = address
    }
}

struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Prove the TURN server is not an open door, and that its public address is right.",
        usage: "turnkeeper audit [<uri> ...] [<credentials>] [<options>]",
        discussion: """
            Tests the server from outside, as an attacker holding a credential
            would, and judges from its answers alone:
              no-auth             an Allocate without credentials is refused
              software-disclosed  answers name no software version
              peer-*              CreatePermission and ChannelBind to loopback,
                                  0.0.0.0/8, RFC 1918, 100.64.0.0/10,
                                  169.254.0.0/16 (169.254.169.254), 198.18.0.0/15
                                  and multicast are refused with 403 (IPv6
                                  ranges on an IPv6 relay)
              own-relay-address   noted: relay-to-relay calls need it
              external-address    with --reflector: the address the relay's
                                  traffic leaves from is the relayed address
              data-path           with --data-peer: whether a Binding sent
                                  through the relay is answered
              certificate         for turns:, not expired nor within 14 days
              tls-versions        for turns:, a hello offering only TLS 1.0
                                  and 1.1 is refused
              quotas              one credential holds at most 50 allocations
                                  before a 486 or 508 (all are released)
              retired-secret      with --retired-secret-file: its
                                  credentials are refused
            Toward a forbidden address it only asks for a permission: a granted
            one is the finding, and nothing is ever sent there. Data goes only
            to the --reflector and --data-peer you name. Each finding comes with its evidence,
            a severity and the coturn option that fixes it.

            Exit status: 0 clean, 1 a finding or a check that could not
            conclude, 2 usage or configuration error.

            Example:
              turnkeeper audit turn:turn.example.org?transport=udp \\
                  --secret-file /etc/turnkeeper/secret \\
                  --reflector 198.51.100.7:3478
            """
    )

    @Argument(
        help: ArgumentHelp("turn: or turns: URIs (RFC 7065).", valueName: "uri"),
        transform: TURNURI.parse)
    var uris: [TURNURI] = []

    @OptionGroup(title: "Credentials")
    var credentials: CredentialOptions

    @Option(
        help: ArgumentHelp(
            "The user the minted credentials are for (at most \(RESTUsername.maximumUserBytes) bytes).",
            valueName: "user-id"))
    var user = "@turnkeeper-audit:localhost"

    @Option(
        help: ArgumentHelp(
            "A STUN server outside the TURN host's network (IPv4:port); the only peer sent to.",
            valueName: "address"))
    var reflector: ReflectorArgument?

    @Option(
        name: .customLong("data-peer"),
        help: ArgumentHelp(
            "A STUN server you run (IPv4:port), even on a private network: proves packets get through.",
            valueName: "address"))
    var dataPeer: ReflectorArgument?

    @Option(
        name: .customLong("retired-secret-file"),
        help: ArgumentHelp(
            "A secret that was retired: its credentials must be refused (repeat for more).", valueName: "file"))
    var retiredSecretFiles: [String] = []

    @Option(
        name: .customLong("ca-file"),
        help: ArgumentHelp("Also trust the CAs in this PEM file for turns:.", valueName: "file"))
    var caFile: String?

    @Option(help: ArgumentHelp("Deadline of each step, in Synapse's duration syntax.", valueName: "duration"))
    var timeout = DurationArgument(argument: "3s")!

    @Flag(help: "Print the report as JSON (schema: docs/audit.md).")
    var json = false

    func validate() throws {
        // The reflector stands outside: a private or loopback one would be the one packet the audit promises
        // never to send there. --data-peer is where an admin names such an address on purpose.
        if let reflector, let range = ForbiddenPeer.covering(reflector.address) {
            throw ValidationError(
                "--reflector \(reflector.address) is in \(range.range): give a STUN server outside the TURN host's "
                    + "network. To send to an address there on purpose, use --data-peer.")
        }
        if uris.isEmpty && !credentials.listsURIs {
            throw ValidationError(
                "Give the URIs to audit, or --synapse-config or --homeserver to take them from Synapse.")
        }
    }

    func run() async throws {
        try RESTUsername.validate(user: user)
        let source = try await credentials.source(caFile: caFile)
            .resolve(user: user, lifetime: SynapseDuration(milliseconds: 600_000))
        source.warnings.forEach(Console.warning)
        var parsed = uris
        if parsed.isEmpty {
            for text in source.uris.prefix(ProbeRunner.maximumURIs) {
                do {
                    parsed.append(try TURNURI(text))
                } catch {
                    throw TurnkeeperError(.invalidArgument, error.description)
                }
            }
        }
        parsed = parsed.filter { $0.scheme == .turn || $0.scheme == .turns }
        if parsed.isEmpty {
            throw TurnkeeperError(
                .invalidArgument, "No turn: or turns: URI to audit: a stun: or stuns: URI relays nothing.")
        }
        if parsed.count > ProbeRunner.maximumURIs {
            Console.warning(
                "\(parsed.count) URIs given; only the first \(ProbeRunner.maximumURIs) are audited, the rest are NOT "
                    + "tested.")
        }
        var retired: [TURNCredentials] = []
        for file in retiredSecretFiles {
            let minted = try await CredentialSource.secretFile(file)
                .resolve(user: user, lifetime: SynapseDuration(milliseconds: 600_000))
            minted.warnings.forEach(Console.warning)
            if let credentials = minted.credentials { retired.append(credentials) }
        }
        let options = AuditOptions(
            credentials: source.credentials, tls: TLSOptions(caFile: caFile), stepTimeout: timeout.value,
            reflector: reflector?.address, dataPeer: dataPeer?.address, retired: retired,
            nowSeconds: WallClock.nowSeconds())
        let report = await AuditRunner.run(parsed, options: options)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(AuditRenderer().render(report))
        }
        if !report.passed { throw ExitCode.failure }
    }
}
