import ArgumentParser
import FoundationEssentials
import Glibc
import NIOCore
import TurnkeeperCore
import TurnkeeperCredentialSource
import TurnkeeperCredentials
import TurnkeeperProbe
import TurnkeeperTURNClient

struct ProbeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "probe",
        abstract: "Prove that calls can relay through a STUN/TURN server, or say what is broken.",
        discussion: """
            For each URI and each address it resolves to (A and AAAA apart), over UDP,
            TCP or TLS (an IPv6 address asks for an IPv6 relay, and takes the IPv4 one
            clients get by default if the server has none):
              binding           the server answers STUN and reports our reflexive address
              allocation        it grants a relay with our credentials
              permission        two relays ("caller" and "callee") permit each other
              relaySendData     media-sized packets relay to relay and back, in
                                Send/Data indications
              channel           both bind a channel to the other
              relayChannelData  the same over ChannelData
              release           both relays are freed
              otherFamily       a relay of the other address family, on a
                                connection of its own (an IPv4 URI asks for
                                IPv6 too, and the reverse); a server with
                                one family answers 440, shown as skipped
            Two relays talking is the worst case of a call (both parties behind symmetric NAT), so a pass \
            with credentials means calls through this server work from where the probe runs. Without \
            credentials only the binding runs: the summary says relaying was not tested, and so does \
            "relayTested": false in --json. Failures come with a diagnosis and its fix.

            Where the URIs and credentials come from (one of):
              --secret-file FILE
                  mint credentials as Synapse does; URIs as arguments
              --username U --password-file P
                  a credential a client got; URIs as arguments
              --synapse-config PATH ...
                  Synapse's own config (homeserver.yaml, conf.d/): its turn_uris,
                  its secret, its turn_user_lifetime
              --homeserver URL --access-token-file F
                  ask Synapse's /voip/turnServer, as a Matrix client does, and
                  probe exactly what it hands out
            URIs given as arguments replace those from Synapse.

            Exit status: 0 everything tested passed (without credentials, only the binding is tested), \
            1 something failed, 2 usage or configuration error.

            Examples:
              turnkeeper probe turns:turn.example.org:5349 \\
                  turn:turn.example.org?transport=udp \\
                  turn:turn.example.org?transport=tcp \\
                  --secret-file /etc/turnkeeper/secret
              turnkeeper probe stun:turn.example.org --json
            """
    )

    @Argument(
        help: ArgumentHelp("stun:, turn: or turns: URIs (RFC 7064/7065).", valueName: "uri"),
        transform: TURNURI.parse)
    var uris: [TURNURI] = []

    @OptionGroup(title: "Credentials")
    var credentials: CredentialOptions

    @Option(
        help: ArgumentHelp(
            "The user the minted credentials are for (at most \(RESTUsername.maximumUserBytes) bytes).",
            valueName: "user-id"))
    var user = "@turnkeeper-probe:localhost"

    @Option(
        name: .customLong("ca-file"),
        help: ArgumentHelp("Also trust the CAs in this PEM file for turns:.", valueName: "file"))
    var caFile: String?

    @Flag(help: "Do not verify TLS certificates. For diagnosis only: anyone could be answering.")
    var insecure = false

    @Option(help: ArgumentHelp("Deadline of each step, in Synapse's duration syntax.", valueName: "duration"))
    var timeout = DurationArgument(argument: "3s")!

    @Option(help: ArgumentHelp("Packets each way on each relay path.", valueName: "count"))
    var packets = 10

    @Flag(help: "Print the report as JSON (schema: docs/probe.md).")
    var json = false

    func validate() throws {
        if uris.isEmpty && !credentials.listsURIs {
            throw ValidationError(
                "Give the URIs to probe, or --synapse-config or --homeserver to take them from Synapse.")
        }
        if !(1...1000).contains(packets) {
            throw ValidationError("--packets must be 1 to 1000.")
        }
    }

    func run() async throws {
        try RESTUsername.validate(user: user)
        let source = try await credentials.source(caFile: caFile)
            .resolve(user: user, lifetime: SynapseDuration(milliseconds: 600_000))
        source.warnings.forEach(Console.warning)
        // A homeserver's answer chooses these: never a fan-out that turns the probe into a scanner.
        let given = uris.isEmpty ? source.uris.count : uris.count
        if given > ProbeRunner.maximumURIs {
            Console.warning(
                "\(given) URIs given; only the first \(ProbeRunner.maximumURIs) are probed, the rest are NOT tested.")
        }
        var parsed = Array(uris.prefix(ProbeRunner.maximumURIs))
        if uris.isEmpty {
            for text in source.uris.prefix(ProbeRunner.maximumURIs) {
                do {
                    parsed.append(try TURNURI(text))
                } catch {
                    throw TurnkeeperError(.invalidArgument, error.description)
                }
            }
        }
        if parsed.isEmpty {
            throw TurnkeeperError(
                .checkFailed,
                "Synapse lists no turn_uris, so clients get no TURN server at all. Add turn_uris to its config."
            )
        }
        if insecure {
            Console.warning("--insecure: TLS certificates are NOT verified; anyone on the path could be answering.")
        }
        let options = ProbeOptions(
            credentials: source.credentials,
            tls: TLSOptions(caFile: caFile, insecure: insecure),
            stepTimeout: timeout.value,
            packets: packets
        )
        let results = await ProbeRunner.run(parsed, options: options)
        let certificates = await fetchCertificates(for: results, parsed)
        let context = Diagnostician.Context(
            credentialExpiry: source.expiry,
            usernameProblem: source.credentials.flatMap { RESTUsername.problem(username: $0.username) },
            nowSeconds: WallClock.nowSeconds(),
            certificates: certificates
        )
        let diagnostician = Diagnostician(context: context)
        let targets = diagnostician.classify(results)
        var report = ProbeReport(targets: targets, diagnoses: diagnostician.diagnose(targets))
        report.nat = await discoverNAT(targets)
        report.credentialExpiry = source.expiry
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(ReportRenderer(colour: isatty(1) == 1).render(report))
        }
        if !report.passed { throw ExitCode.failure }
    }

    /// RFC 5780 against the first UDP server that answered a Binding; nil when it has no second address.
    private func discoverNAT(_ targets: [TargetReport]) async -> NATBehaviour? {
        guard
            let target = targets.first(where: { target in
                target.transport == "udp" && target.steps.contains { $0.step == .binding && $0.status == .pass }
            }),
            let server = try? SocketAddress(hostAndPort: target.address)
        else { return nil }
        return try? await NATDiscovery.discover(server: server, timeout: .milliseconds(1500))
    }

    /// After a TLS failure, the certificate is fetched unverified so the diagnosis can name what is wrong with it.
    private func fetchCertificates(for targets: [TargetReport], _ uris: [TURNURI]) async -> [String: Diagnostician
        .CertificateFacts]
    {
        var facts: [String: Diagnostician.CertificateFacts] = [:]
        for target in targets where target.steps.contains(where: { $0.failure == .tls }) {
            guard let uri = uris.first(where: { $0.text == target.uri }),
                let endpoint = try? await uri.endpoints(transport: .tls)
                    .first(where: { $0.address.hostAndPort == target.address }),
                let certificate = try? await TLSInspector.certificate(of: endpoint, timeout: .seconds(3))
            else { continue }
            facts[target.address] = Diagnostician.CertificateFacts(
                names: certificate.names,
                notValidAfter: certificate.notValidAfter,
                notValidAfterText: WallClock.utcString(seconds: certificate.notValidAfter)
            )
        }
        return facts
    }
}
