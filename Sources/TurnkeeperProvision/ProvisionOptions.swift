public import TurnkeeperCore
import TurnkeeperCredentials

/// What `turnkeeper provision` is told about the TURN host, checked before anything is written.
public struct ProvisionOptions: Sendable {
    public var domain: String
    public var publicAddress: String
    /// The host's own address when it sits behind a port-forwarding NAT.
    public var privateAddress: String?
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
        domain: String, publicAddress: String, privateAddress: String? = nil, realm: String? = nil,
        certificate: String, key: String, minPort: Int = 49152, maxPort: Int = 65535, userQuota: Int = 12,
        totalQuota: Int = 1200, homeserver: String = "http://127.0.0.1:8008", epoch: String = "1d",
        turnUserLifetime: String = "1h",
        lab: Bool = false
    ) {
        self.domain = domain
        self.publicAddress = publicAddress
        self.privateAddress = privateAddress
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
        guard let address = IPAddress(publicAddress) else {
            throw fail("--public-address \(publicAddress) is not an IPv4 or IPv6 address")
        }
        if let range = AddressRange.denied.first(where: { $0.contains(address) }), !lab {
            throw fail(
                "--public-address \(publicAddress) is in the denied peer range \(range): a private, reserved or "
                    + "documentation address, which no peer on the Internet can reach. Give the address the host "
                    + "is reached at, and its own with --private-address if it sits behind NAT.")
        }
        if let privateAddress {
            guard let inside = IPAddress(privateAddress) else {
                throw fail("--private-address \(privateAddress) is not an IPv4 or IPv6 address")
            }
            guard inside.isIPv6 == address.isIPv6 else {
                throw fail(
                    "--private-address \(privateAddress) and --public-address \(publicAddress) are of different families"
                )
            }
            guard inside != address else {
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
