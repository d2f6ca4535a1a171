public import TurnkeeperCore
import TurnkeeperCredentials

/// What `turnkeeper provision` is told about the TURN host, checked before anything is written.
public struct ProvisionOptions: Sendable {
    public var domain: String
    /// The addresses clients reach the host at: one, or one of each family for a dual-stack host.
    public var publicAddresses: [String]
    /// The host's own addresses where it sits behind a port-forwarding NAT, each of a public address's family.
    public var privateAddresses: [String]
    /// The coturn the TURN host runs: the rendered config has no line that version warns on.
    public var coturnVersion: CoturnVersion
    /// The first public address: the one the TURN host's own probe uses.
    public var publicAddress: String { publicAddresses.first ?? "" }
    /// The private address behind `publicAddress`, if any.
    public var privateAddress: String? { privateAddress(for: publicAddress) }

    /// The private address of `publicAddress`'s family, if the host is behind NAT for it.
    public func privateAddress(for publicAddress: String) -> String? {
        let family = IPAddress(publicAddress)?.isIPv6
        return privateAddresses.first { IPAddress($0)?.isIPv6 == family }
    }
    public var realm: String
    public var certificate: String
    public var key: String
    public var minPort: Int
    public var maxPort: Int
    public var userQuota: Int
    public var totalQuota: Int
    /// The Synapse host's client API, for its turnkeeper's health check.
    public var homeserver: String
    /// How long each derived secret serves.
    public var epoch: String
    /// Synapse's turn_user_lifetime; an epoch must be at least twice as long.
    public var turnUserLifetime: String
    /// Allow documentation ranges (203.0.113.0/24 and the like) as the public address, for the NAT lab.
    public var lab: Bool

    public init(
        domain: String, publicAddresses: [String], privateAddresses: [String] = [], realm: String? = nil,
        certificate: String, key: String, minPort: Int = 49152, maxPort: Int = 65535, userQuota: Int = 12,
        totalQuota: Int = 1200, homeserver: String = "http://127.0.0.1:8008", epoch: String = "1d",
        turnUserLifetime: String = "1h", coturnVersion: CoturnVersion = .debian,
        lab: Bool = false
    ) {
        self.domain = domain
        self.publicAddresses = publicAddresses
        self.privateAddresses = privateAddresses
        self.coturnVersion = coturnVersion
        self.realm = realm ?? domain
        self.certificate = certificate
        self.key = key
        self.minPort = minPort
        self.maxPort = maxPort
        self.userQuota = userQuota
        self.totalQuota = totalQuota
        self.homeserver = homeserver
        self.epoch = epoch
        self.turnUserLifetime = turnUserLifetime
        self.lab = lab
    }

    /// Every check, each failure saying what to change. Nothing is written before this passes.
    public func validate(fileExists: (String) -> Bool) throws(TurnkeeperError) {
        func fail(_ reason: String) -> TurnkeeperError { TurnkeeperError(.invalidArgument, reason) }
        let labels = domain.split(separator: ".", omittingEmptySubsequences: false)
        guard labels.count >= 2,
            labels.allSatisfy({
                !$0.isEmpty && $0.count <= 63 && $0.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" }
            })
        else {
            throw fail("--domain \(domain) is not a DNS name such as turn.example.com")
        }
        guard (1...2).contains(publicAddresses.count) else {
            throw fail("give --public-address once, or twice for a dual-stack host (one IPv4, one IPv6)")
        }
        var families: [Bool] = []
        for publicAddress in publicAddresses {
            guard let address = IPAddress(publicAddress) else {
                throw fail("--public-address \(publicAddress) is not an IPv4 or IPv6 address")
            }
            guard !families.contains(address.isIPv6) else {
                throw fail(
                    "--public-address is given twice for \(address.isIPv6 ? "IPv6" : "IPv4"): give one address of "
                        + "each family")
            }
            families.append(address.isIPv6)
            if let range = AddressRange.denied.first(where: { $0.contains(address) }), !lab {
                throw fail(
                    "--public-address \(publicAddress) is in the denied peer range \(range): a private, reserved or "
                        + "documentation address, which no peer on the Internet can reach. Give the address the "
                        + "host is reached at, and its own with --private-address if it sits behind NAT.")
            }
        }
        var privateFamilies: [Bool] = []
        for privateAddress in privateAddresses {
            guard let inside = IPAddress(privateAddress) else {
                throw fail("--private-address \(privateAddress) is not an IPv4 or IPv6 address")
            }
            guard families.contains(inside.isIPv6), !privateFamilies.contains(inside.isIPv6) else {
                throw fail(
                    "--private-address \(privateAddress) has no --public-address of its family, or its family has "
                        + "two: give at most one private address per public one, of the same family")
            }
            privateFamilies.append(inside.isIPv6)
            guard !publicAddresses.contains(where: { IPAddress($0) == inside }) else {
                throw fail("--private-address equals --public-address; leave it out when the host is not behind NAT")
            }
        }
        guard (1024...65535).contains(minPort), (1024...65535).contains(maxPort) else {
            throw fail("--min-port and --max-port must be 1024 to 65535 (given \(minPort)-\(maxPort))")
        }
        guard minPort <= maxPort else {
            throw fail("the relay port range \(minPort)-\(maxPort) is inverted: --min-port must not exceed --max-port")
        }
        guard userQuota >= 1, totalQuota >= userQuota else {
            throw fail("--user-quota must be at least 1 and at most --total-quota (given \(userQuota), \(totalQuota))")
        }
        let ports = maxPort - minPort + 1
        guard ports >= totalQuota else {
            throw fail(
                "the relay port range \(minPort)-\(maxPort) has \(ports) ports, fewer than --total-quota "
                    + "\(totalQuota): each allocation holds one. Widen the range or lower the quota.")
        }
        for (option, path) in [("--cert", certificate), ("--key", key)] {
            guard path.hasPrefix("/") else { throw fail("\(option) \(path) must be an absolute path") }
            guard fileExists(path) else {
                throw fail(
                    "\(option) \(path) does not exist. Obtain the certificate first (for example `certbot certonly "
                        + "--standalone -d \(domain)`), then run provision again.")
            }
        }
        let epochLength = try SynapseDuration(parsing: epoch, source: "--epoch")
        let lifetime = try SynapseDuration(parsing: turnUserLifetime, source: "--turn-user-lifetime")
        guard epochLength.seconds >= 2 * lifetime.seconds else {
            throw fail(
                "--epoch \(epoch) is shorter than twice --turn-user-lifetime \(turnUserLifetime): a credential "
                    + "Synapse hands out at the end of an epoch must stay valid into the next, with room for clock skew"
            )
        }
    }
}
