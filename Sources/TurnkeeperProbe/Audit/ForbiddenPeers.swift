public import TurnkeeperSTUN

/// Peer addresses a TURN server must never relay to, one per range, each with the finding a granted
/// permission is and the coturn line that closes it. The audit asks for a permission only: it never sends a
/// packet toward any of them. Pure.
public struct ForbiddenPeer: Sendable, Hashable {
    public let address: TransportAddress
    /// The range, for people: "loopback (127.0.0.0/8)".
    public let range: String
    public let check: String
    public let severity: AuditFinding.Severity
    public let fix: String

    public static let all: [ForbiddenPeer] = [
        v4(
            "127.0.0.1", "loopback (127.0.0.0/8)", "peer-loopback", .critical,
            "Remove allow-loopback-peers from turnserver.conf (coturn refuses loopback peers without it) and add "
                + "denied-peer-ip=127.0.0.0-127.255.255.255."),
        v4(
            "169.254.169.254", "the cloud metadata endpoint (169.254.169.254)", "peer-metadata", .critical,
            "Add denied-peer-ip=169.254.0.0-169.254.255.255 to turnserver.conf: a credential holder can read this "
                + "host's cloud credentials through the relay (coturn's CVE-2020-26262 class)."),
        v4(
            "169.254.0.1", "link-local (169.254.0.0/16)", "peer-link-local", .high,
            "Add denied-peer-ip=169.254.0.0-169.254.255.255 to turnserver.conf."),
        v4(
            "0.0.0.1", "\"this network\" (0.0.0.0/8, which Linux routes to the host itself)", "peer-this-network",
            .critical, "Add denied-peer-ip=0.0.0.0-0.255.255.255 to turnserver.conf."),
        v4(
            "10.0.0.1", "private (10.0.0.0/8)", "peer-private", .high,
            "Add denied-peer-ip=10.0.0.0-10.255.255.255 to turnserver.conf."),
        v4(
            "172.16.0.1", "private (172.16.0.0/12)", "peer-private", .high,
            "Add denied-peer-ip=172.16.0.0-172.31.255.255 to turnserver.conf."),
        v4(
            "192.168.0.1", "private (192.168.0.0/16)", "peer-private", .high,
            "Add denied-peer-ip=192.168.0.0-192.168.255.255 to turnserver.conf."),
        v4(
            "100.64.0.1", "shared address space (100.64.0.0/10, carrier-grade NAT)", "peer-shared-space", .high,
            "Add denied-peer-ip=100.64.0.0-100.127.255.255 to turnserver.conf."),
        v4(
            "198.18.0.1", "benchmarking (198.18.0.0/15)", "peer-benchmarking", .medium,
            "Add denied-peer-ip=198.18.0.0-198.19.255.255 to turnserver.conf."),
        v4(
            "224.0.0.1", "multicast (224.0.0.0/4)", "peer-multicast", .medium,
            "Add no-multicast-peers to turnserver.conf."),
        v6(
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], "loopback (::1)", "peer-loopback", .critical,
            "Remove allow-loopback-peers from turnserver.conf and add denied-peer-ip=::1."),
        v6(
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 127, 0, 0, 1], "IPv4-mapped loopback (::ffff:127.0.0.1)",
            "peer-loopback", .critical,
            "Add denied-peer-ip=::ffff:0.0.0.0-::ffff:255.255.255.255 to turnserver.conf."),
        v6(
            [0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], "unique local (fc00::/7)", "peer-private", .high,
            "Add denied-peer-ip=fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff to turnserver.conf."),
        v6(
            [0xFE, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], "link-local (fe80::/10)", "peer-link-local",
            .high, "Add denied-peer-ip=fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff to turnserver.conf."),
    ]

    /// The peers a relay of `family` can be asked about: a relay reaches only its own family.
    public static func peers(for family: TransportAddress.Family) -> [ForbiddenPeer] {
        all.filter { $0.address.family == family }
    }

    private static func v4(
        _ text: String, _ range: String, _ check: String, _ severity: AuditFinding.Severity, _ fix: String
    ) -> ForbiddenPeer {
        ForbiddenPeer(
            address: TransportAddress(ipv4: text, port: 9)!, range: range, check: check, severity: severity, fix: fix)
    }

    private static func v6(
        _ bytes: [UInt8], _ range: String, _ check: String, _ severity: AuditFinding.Severity, _ fix: String
    ) -> ForbiddenPeer {
        ForbiddenPeer(
            address: TransportAddress(family: .ipv6, address: bytes, port: 9)!, range: range, check: check,
            severity: severity, fix: fix)
    }
}

extension ForbiddenPeer {
    /// Loopback, RFC 1918, shared address space, link-local, unique local: no peer could reach it.
    public static func isPrivate(_ address: TransportAddress) -> Bool {
        let bytes = address.address
        switch address.family {
        case .ipv4:
            return bytes[0] == 10 || bytes[0] == 127 || (bytes[0] == 172 && bytes[1] & 0xF0 == 16)
                || (bytes[0] == 192 && bytes[1] == 168) || (bytes[0] == 100 && bytes[1] & 0xC0 == 64)
                || (bytes[0] == 169 && bytes[1] == 254)
        case .ipv6:
            return bytes[0] & 0xFE == 0xFC || (bytes[0] == 0xFE && bytes[1] & 0xC0 == 0x80)
                || bytes == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
        }
    }
}
