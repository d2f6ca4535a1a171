import FoundationEssentials
import TurnkeeperConfiguration
import TurnkeeperCore
public import TurnkeeperCredentials

/// One file of the bundle: where it goes in the bundle, its mode, its text.
public struct BundleFile: Sendable {
    public var path: String
    public var mode: UInt32
    public var text: String
}

/// Renders the reviewable bundle for a separate TURN host (docs/separate-turn-host.md). Pure: the files are
/// returned, and ``ProvisionBundle`` writes them.
public struct Provisioner: Sendable {
    public let options: ProvisionOptions
    public let date: String

    public init(options: ProvisionOptions, date: String) {
        self.options = options
        self.date = date
    }

    /// - Parameter rootKey: shared by both hosts; each derives every epoch's secret from it.
    public func render(rootKey: TurnSecret) -> [BundleFile] {
        let key = rootKey.withExposedBytes { String(decoding: $0, as: UTF8.self) } + "\n"
        let uris = turnURIs
        return [
            BundleFile(path: "README.md", mode: 0o644, text: readme),
            BundleFile(path: "dns.txt", mode: 0o644, text: dns),
            BundleFile(path: "turn-host/turnserver.conf", mode: 0o640, text: turnserverConf),
            BundleFile(path: "turn-host/coturn.service.d/turnkeeper.conf", mode: 0o644, text: coturnDropIn),
            BundleFile(path: "turn-host/coturn-certificates.path", mode: 0o644, text: certificatePath),
            BundleFile(path: "turn-host/coturn-certificates.service", mode: 0o644, text: certificateService),
            BundleFile(path: "turn-host/nftables-turn.nft", mode: 0o644, text: nftables),
            BundleFile(path: "turn-host/turnkeeper.yaml", mode: 0o600, text: turnHostConfig(uris)),
            BundleFile(path: "turn-host/root-key", mode: 0o600, text: key),
            BundleFile(path: "synapse-host/conf.d/60-turn.yaml", mode: 0o640, text: synapseFragment(uris)),
            BundleFile(path: "synapse-host/turnkeeper.yaml", mode: 0o600, text: synapseHostConfig),
            BundleFile(path: "synapse-host/root-key", mode: 0o600, text: key),
        ]
    }

    /// An address as a URI's host: IPv6 in brackets.
    static func uriHost(_ address: String) -> String { address.contains(":") ? "[\(address)]" : address }

    var turnURIs: [String] {
        [
            "turn:\(options.domain)?transport=udp", "turn:\(options.domain)?transport=tcp",
            "turns:\(options.domain):5349?transport=tcp",
        ]
    }

    var turnserverConf: String {
        var addresses: [String] = []
        for publicAddress in options.publicAddresses {
            let behindNAT = options.privateAddress(for: publicAddress)
            let listen = behindNAT ?? publicAddress
            addresses += ["listening-ip=\(listen)", "relay-ip=\(listen)"]
            addresses.append(
                behindNAT.map { "external-ip=\(publicAddress)/\($0)" }
                    ?? "# No external-ip for \(publicAddress): it is on this host itself.")
        }
        if options.publicAddresses.count == 1 {
            let other = IPAddress(options.publicAddress)?.isIPv6 == true ? "IPv4" : "IPv6"
            addresses.append(
                "# No \(other) address: clients asking for an \(other) relay get 440. Give provision an \(other) "
                    + "--public-address to add one.")
        }
        let version = options.coturnVersion
        // What a version turned off by default, it warns on (no-tlsv1, no-tlsv1_1 from 4.7) or logs as an
        // error (no-cli from 4.10): those lines go, and a comment says why.
        let tls =
            version.tlsFloorFromOpenSSL
            ? "# coturn \(version) has no no-tlsv1/no-tlsv1_1 (since 4.7): OpenSSL's defaults set the lowest TLS "
                + "version, and OpenSSL 3 refuses 1.0 and 1.1 (measured). `turnkeeper audit` proves it."
            : "no-tlsv1\nno-tlsv1_1"
        let cli =
            version.cliOffByDefault
            ? "# The telnet CLI is off by default in coturn \(version) (since 4.10), which logs no-cli as an error."
            : "no-cli"
        let software =
            version.softwareOffByDefault
            ? "# coturn \(version) sends no SOFTWARE attribute by default (since 4.7)." : "no-software-attribute"
        var advisories = version.advisories.map { advisory in
            "# coturn \(version) carries \(advisory.id) (\(advisory.what)), fixed in \(advisory.fixedIn)"
                + (advisory.configFix.map {
                    $0.hasPrefix("denied-peer-ip") ? ": the deny list below closes it." : ": \($0)."
                }
                    ?? ": only the upgrade fixes it.")
        }
        if !advisories.isEmpty { advisories.insert("# Rendered for coturn \(version).", at: 0) }
        return TurnserverTemplate.text
            .replacing("@DOMAIN@", with: options.domain)
            .replacing("@DATE@", with: date + (advisories.isEmpty ? "" : "\n" + advisories.joined(separator: "\n")))
            .replacing("@ADDRESSES@", with: addresses.joined(separator: "\n"))
            .replacing("@MIN_PORT@", with: String(options.minPort))
            .replacing("@MAX_PORT@", with: String(options.maxPort))
            .replacing("@REALM@", with: options.realm)
            .replacing("@CERT@", with: options.certificate)
            .replacing("@KEY@", with: options.key)
            .replacing("@TLS_VERSIONS@", with: tls)
            .replacing("@NO_CLI@", with: cli)
            .replacing("@NO_SOFTWARE@", with: software)
            .replacing("@USER_QUOTA@", with: String(options.userQuota))
            .replacing("@TOTAL_QUOTA@", with: String(options.totalQuota))
            .replacing(
                "@ALLOWED_PEERS@",
                with: options.publicAddresses.map { "allowed-peer-ip=\($0)" }.joined(separator: "\n")) + "\n"
    }

    var coturnDropIn: String {
        """
        # /etc/systemd/system/coturn.service.d/turnkeeper.conf, from `turnkeeper provision`.
        [Service]
        # Every relayed call holds sockets; the default 1024 caps a busy server.
        LimitNOFILE=65536
        # turnkeeper's secrets live in this database; coturn reads it on every login.
        ReadWritePaths=/var/lib/turn

        """
    }

    var certificatePath: String {
        """
        # /etc/systemd/system/coturn-certificates.path, from `turnkeeper provision`.
        # When the certificate is renewed (by certbot or any ACME client), coturn reloads it. SIGUSR2 is the
        # only signal coturn 4.6.1 reloads certificates on; SIGHUP does not, and under syslog kills it.
        [Unit]
        Description=Reload coturn's TLS certificate for \(options.domain) when it changes

        [Path]
        PathChanged=\(options.certificate)
        PathChanged=\(options.key)

        [Install]
        WantedBy=multi-user.target

        """
    }

    var certificateService: String {
        """
        # /etc/systemd/system/coturn-certificates.service, started by coturn-certificates.path.
        [Unit]
        Description=Tell coturn to reload its TLS certificate (SIGUSR2)

        [Service]
        Type=oneshot
        ExecStart=/bin/systemctl kill --signal=SIGUSR2 coturn.service

        """
    }

    var nftables: String {
        """
        # nftables rules for the TURN host, from `turnkeeper provision`. Include this file from
        # /etc/nftables.conf and jump to the chain from your input chain:
        #     include "/etc/nftables.d/turn.nft"
        #     table inet filter { chain input { ... jump turn ... } }
        table inet filter {
            chain turn {
                # STUN/TURN on 3478, TURN over TLS on 5349.
                udp dport { 3478, 5349 } accept
                tcp dport { 3478, 5349 } accept
                # The relay ports (min-port to max-port in turnserver.conf).
                udp dport \(options.minPort)-\(options.maxPort) accept
            }
        }

        """
    }

    var dns: String {
        let records = options.publicAddresses.map { address in
            "\(options.domain).\t3600\tIN\t\(IPAddress(address)?.isIPv6 == true ? "AAAA" : "A")\t\(address)"
        }
        return """
            ; DNS records to create for the TURN host, from `turnkeeper provision`.
            \(records.joined(separator: "\n"))
            ; Optional, for clients that look TURN up by service:
            _turn._udp.\(options.domain).\t3600\tIN\tSRV\t0 0 3478 \(options.domain).
            _turn._tcp.\(options.domain).\t3600\tIN\tSRV\t0 0 3478 \(options.domain).
            _turns._tcp.\(options.domain).\t3600\tIN\tSRV\t0 0 5349 \(options.domain).

            """
    }

    func synapseFragment(_ uris: [String]) -> String {
        """
        # /etc/matrix-synapse/conf.d/60-turn.yaml, from `turnkeeper provision`. The secret itself is written by
        # turnkeeper into 90-turnkeeper.yaml at every epoch.
        turn_uris: [\(uris.map { "\"\($0)\"" }.joined(separator: ", "))]
        turn_user_lifetime: "\(options.turnUserLifetime)"
        turn_allow_guests: false

        """
    }

    /// Validated by ``ProvisionOptions/validate()`` before anything is rendered.
    private var epochLength: SynapseDuration { (try? SynapseDuration(parsing: options.epoch)) ?? .days(1) }

    /// /etc/turnkeeper/turnkeeper.yaml on the TURN host, rendered from the typed configuration.
    func turnHostConfig(_ uris: [String]) -> String {
        Configuration(
            role: .turnHost(.init(rootKeyFile: "/etc/turnkeeper/root-key", epoch: epochLength)),
            coturn: .init(
                realm: options.realm, verifyURI: "turn:\(Self.uriHost(options.publicAddress))?transport=udp",
                store: .sqlite(database: "/var/lib/turn/turndb")),
            daemon: .init(probeURIs: uris)
        ).rendered(header: [
            "/etc/turnkeeper/turnkeeper.yaml on the TURN host \(options.domain), from `turnkeeper provision`.",
            "This host keeps the previous, current and next epochs' secrets in coturn's database.",
            "Every setting is written out; docs/configuration.md explains each.",
        ])
    }

    /// /etc/turnkeeper/turnkeeper.yaml on the Synapse host, rendered from the typed configuration.
    var synapseHostConfig: String {
        Configuration(
            role: .synapseHost(.init(rootKeyFile: "/etc/turnkeeper/root-key", epoch: epochLength)),
            synapse: .init(group: "matrix-synapse", healthURL: "\(options.homeserver)/health"),
            coturn: .init(realm: options.realm, verifyURI: "turn:\(options.domain)?transport=udp")
        ).rendered(header: [
            "/etc/turnkeeper/turnkeeper.yaml on the Synapse host, from `turnkeeper provision`.",
            "This host switches Synapse to each epoch's secret when the epoch starts.",
            "synapse.group is the group Synapse runs as (Debian's package); it must exist on this host.",
            "Every setting is written out; docs/configuration.md explains each.",
        ])
    }

    var readme: String {
        let nat = options.publicAddresses.compactMap { publicAddress in
            options.privateAddress(for: publicAddress).map {
                "The host sits behind NAT: it listens on \($0), and external-ip tells clients \(publicAddress). "
                    + "Forward UDP and TCP 3478 and 5349, and UDP \(options.minPort)-\(options.maxPort), to \($0).\n"
            }
        }.joined()
        return """
            # TURN host bundle for \(options.domain)

            Rendered by `turnkeeper provision` on \(date). Nothing here is installed yet: review, then copy.
            See docs/separate-turn-host.md for the whole walkthrough.

            \(nat)
            ## On the TURN host (\(options.domain), \(options.publicAddresses.joined(separator: " and ")))

            turnserver.conf is rendered for coturn \(options.coturnVersion) (`turnserver --version` on the TURN host
            says which it runs; render again with --coturn-version if it differs).

            | file | install as | mode |
            |---|---|---|
            | turn-host/turnserver.conf | /etc/turnserver.conf | 0640 root:turnserver |
            | turn-host/coturn.service.d/turnkeeper.conf | /etc/systemd/system/coturn.service.d/turnkeeper.conf | 0644 |
            | turn-host/coturn-certificates.path, .service | /etc/systemd/system/ | 0644 |
            | turn-host/nftables-turn.nft | /etc/nftables.d/turn.nft, included from /etc/nftables.conf | 0644 |
            | turn-host/turnkeeper.yaml | /etc/turnkeeper/turnkeeper.yaml | 0600 |
            | turn-host/root-key | /etc/turnkeeper/root-key | 0600 root |

            Then: `systemctl daemon-reload && systemctl enable --now coturn-certificates.path && systemctl
            restart coturn && systemctl enable --now turnkeeper`.

            ## On the Synapse host

            | file | install as | mode |
            |---|---|---|
            | synapse-host/conf.d/60-turn.yaml | /etc/matrix-synapse/conf.d/60-turn.yaml | 0640 root:matrix-synapse |
            | synapse-host/turnkeeper.yaml | /etc/turnkeeper/turnkeeper.yaml | 0600 |
            | synapse-host/root-key | /etc/turnkeeper/root-key | 0600 root |

            Then: `systemctl enable --now turnkeeper`. It writes the current epoch's secret into Synapse's conf.d
            and restarts Synapse.

            ## DNS

            Create the records in dns.txt.

            ## Still to check by hand

            - The certificate \(options.certificate) and key \(options.key) must be readable by the turnserver user.
            - synapse-host/turnkeeper.yaml assumes Synapse answers \(options.homeserver)/health; change
              health_url if it listens elsewhere.
            - The root key is the one secret both hosts share. Move the bundle by a channel you trust (scp), and
              delete the bundle's copies once installed.

            """
    }
}
