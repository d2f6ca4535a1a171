public import ArgumentParser
import Glibc
public import TurnkeeperCore
import TurnkeeperCredentials
import TurnkeeperProvision

struct ProvisionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "provision",
        abstract: "Write a reviewable bundle for a separate TURN host: coturn, firewall, units, DNS, both turnkeepers.",
        usage: """
            turnkeeper provision --domain <name> --public-address <ip>
                     [--public-address <ipv6>] --cert <file> --key <file>
                     --out <dir> [<options>]
            """,
        discussion: """
            Nothing on this machine is changed unless --apply says so: every file goes into --out, a new \
            directory, written as a whole or not at all. The bundle holds, with real values:
              turn-host/turnserver.conf        hardened coturn (deny list, quotas,
                                               TLS 1.2+, log to stdout) for the
                                               --coturn-version given, with a
                                               listener and relay per family
              turn-host/coturn.service.d/      LimitNOFILE for coturn
              turn-host/coturn-certificates.*  a path unit: SIGUSR2 to coturn when
                                               the certificate renews
              turn-host/nftables-turn.nft      3478 and 5349 (UDP, TCP), relay ports
              turn-host/turnkeeper.yaml        role turn: keeps epochs' secrets in
                                               coturn's database
              synapse-host/conf.d/60-turn.yaml turn_uris (UDP, TCP, turns: on 5349)
                                               and the lifetime
              synapse-host/turnkeeper.yaml     role synapse: switches Synapse at
                                               each epoch
              */root-key                       the key both hosts derive every
                                               epoch's secret from (0600)
              dns.txt, README.md               records to create; where files go
            See docs/separate-turn-host.md.

            Example:
              turnkeeper provision --domain turn.example.com \\
                  --public-address PUBLIC_IP \\
                  --cert /etc/letsencrypt/live/turn.example.com/fullchain.pem \\
                  --key /etc/letsencrypt/live/turn.example.com/privkey.pem \\
                  --out ./turn-bundle

            The certificate must be PEM, name --domain among its subjectAltName DNS names, be valid now and \
            match --key; one that expires within 14 days is written with a warning.

            Exit status: 0 written, 2 bad input (nothing written).
            """
    )

    @Option(help: ArgumentHelp("The TURN host's DNS name, such as turn.example.com.", valueName: "name"))
    var domain: String

    @Option(
        name: .customLong("public-address"),
        help: ArgumentHelp(
            "The address clients reach it at; give it twice (an IPv4 and an IPv6 address) for a dual-stack host.",
            valueName: "ip"))
    var publicAddresses: [String] = []

    @Option(
        name: .customLong("private-address"),
        help: ArgumentHelp(
            "Its own address, when it sits behind a port-forwarding NAT (one per public address behind NAT, of "
                + "its family).",
            valueName: "ip"))
    var privateAddresses: [String] = []

    @Option(
        name: .customLong("coturn-version"),
        help: ArgumentHelp(
            "The coturn the TURN host runs (`turnserver --version` there): the config then has no line that "
                + "version warns on or rejects, and names the advisories it carries. Default: Debian's 4.6.1.",
            valueName: "version"))
    var coturnVersion: CoturnVersion = .debian

    @Option(help: ArgumentHelp("coturn's realm (default: the domain).", valueName: "realm"))
    var realm: String?

    @Option(help: ArgumentHelp("The TLS certificate chain (PEM) on the TURN host.", valueName: "file"))
    var cert: String

    @Option(help: ArgumentHelp("Its private key (PEM).", valueName: "file"))
    var key: String

    @Option(name: .customLong("min-port"), help: ArgumentHelp("First relay port.", valueName: "port"))
    var minPort = 49152

    @Option(name: .customLong("max-port"), help: ArgumentHelp("Last relay port.", valueName: "port"))
    var maxPort = 65535

    @Option(name: .customLong("user-quota"), help: ArgumentHelp("Allocations per user.", valueName: "count"))
    var userQuota = 12

    @Option(name: .customLong("total-quota"), help: ArgumentHelp("Allocations in all.", valueName: "count"))
    var totalQuota = 1200

    @Option(help: ArgumentHelp("Synapse's client API on the Synapse host, for its health.", valueName: "url"))
    var homeserver = "http://127.0.0.1:8008"

    @Option(help: ArgumentHelp("How long each derived secret serves.", valueName: "duration"))
    var epoch = "1d"

    @Option(
        name: .customLong("turn-user-lifetime"),
        help: ArgumentHelp("Synapse's credential lifetime; at most half an epoch.", valueName: "duration"))
    var turnUserLifetime = "1h"

    @Flag(help: .hidden)
    var lab = false

    @Option(help: ArgumentHelp("A new directory for the bundle.", valueName: "dir"))
    var out: String

    @Option(
        help: ArgumentHelp(
            "Also install this host's part where its services read it: turn-host or synapse-host. Files already "
                + "there with other content are kept as NAME.turnkeeper-old.",
            valueName: "host"))
    var apply: String?

    @Option(help: .hidden)
    var root = "/"

    func validate() throws {
        if publicAddresses.isEmpty {
            throw ValidationError("Give --public-address: the address clients reach the TURN host at.")
        }
        if let apply, ProvisionApply.Host(rawValue: apply) == nil {
            throw ValidationError("--apply takes turn-host or synapse-host, not \(apply).")
        }
    }

    func run() throws {
        let options = ProvisionOptions(
            domain: domain, publicAddresses: publicAddresses, privateAddresses: privateAddresses, realm: realm,
            certificate: cert, key: key, minPort: minPort, maxPort: maxPort, userQuota: userQuota,
            totalQuota: totalQuota, homeserver: homeserver, epoch: epoch, turnUserLifetime: turnUserLifetime,
            coturnVersion: coturnVersion, lab: lab)
        try options.validate { access($0, R_OK) == 0 }
        // A certificate coturn or clients would refuse is caught here, not at the first turns: call.
        for warning in try CertificateCheck.verify(
            certificate: cert, key: key, domain: domain, now: WallClock.nowSeconds())
        {
            Console.warning(warning)
        }
        let files = Provisioner(options: options, date: WallClock.utcString(seconds: WallClock.nowSeconds()))
            .render(rootKey: try TurnSecret.generate())
        try ProvisionBundle.write(files, to: out)
        print("wrote \(files.count) files to \(out); read \(out)/README.md, then install them as it says")
        if let apply = apply.flatMap(ProvisionApply.Host.init(rawValue:)) {
            for line in try ProvisionApply.apply(files, host: apply, root: root) { print(line) }
            print(
                apply == .turnHost
                    ? "next: systemctl daemon-reload && systemctl enable --now coturn-certificates.path && systemctl "
                        + "restart coturn && systemctl enable --now turnkeeper"
                    : "next: systemctl enable --now turnkeeper (it writes the epoch's secret and restarts Synapse)")
        }
    }
}

/// `4.6.1`, `4.17.1` or `4.6.1-1` (a Debian version; the revision is ignored).
extension CoturnVersion: ExpressibleByArgument {
    public init?(argument: String) { self.init(text: argument) }
    public var defaultValueDescription: String { description }
}
