public import TurnkeeperSTUN

/// Peer addresses a TURN server must never relay to, one per range, each with the finding a granted
/// permission is and the coturn line that closes it. The audit asks for a permission only: it never sends a
/// packet toward any of them. Pure.
public struct ForbiddenPeer: Sendable, Hashable {
    public let address: TransportAddress
    /// The range `address` stands for: its first `prefixLength` bits.
    public let prefixLength: Int
    /// The range, for people: "loopback (127.0.0.0/8)".
    public let range: String
    public let check: AuditCheckID
    public let severity: AuditFinding.Severity
    public let fix: String
    /// The coturn vulnerability a granted permission here is, when it is one.
    public let cve: String?
    /// How an IPv4 range is written in IPv6 here ("IPv4-mapped"), for peers that embed one.
    public let form: String?

    init(
        address: TransportAddress, prefixLength: Int, range: String, check: AuditCheckID,
        severity: AuditFinding.Severity,
        fix: String, cve: String? = nil, form: String? = nil
    ) {
        self.address = address
        self.prefixLength = prefixLength
        self.range = range
        self.check = check
        self.severity = severity
        self.fix = fix
        self.cve = cve
        self.form = form
    }

    public static let all: [ForbiddenPeer] = [
        v4(
            "127.0.0.1", 8, "loopback (127.0.0.0/8)", .peerLoopback, .critical,
            "Remove allow-loopback-peers from turnserver.conf (coturn refuses loopback peers without it) and add "
                + "denied-peer-ip=127.0.0.0-127.255.255.255."),
        v4(
            "169.254.169.254", 32, "the cloud metadata endpoint (169.254.169.254)", .peerMetadata, .critical,
            "Add denied-peer-ip=169.254.0.0-169.254.255.255 to turnserver.conf: through the relay, a credential "
                + "holder could read this host's cloud credentials."),
        v4(
            "169.254.0.1", 16, "link-local (169.254.0.0/16)", .peerLinkLocal, .high,
            "Add denied-peer-ip=169.254.0.0-169.254.255.255 to turnserver.conf."),
        v4(
            "0.0.0.0", 8, "\"this host\" (0.0.0.0, which Linux delivers to the host itself: CVE-2020-26262)",
            .peerThisNetwork, .critical,
            "Upgrade coturn to 4.5.2 or later (it refuses 0.0.0.0 itself: CVE-2020-26262) and add "
                + "denied-peer-ip=0.0.0.0-0.255.255.255 to turnserver.conf."),
        v4(
            "10.0.0.1", 8, "private (10.0.0.0/8)", .peerPrivate, .high,
            "Add denied-peer-ip=10.0.0.0-10.255.255.255 to turnserver.conf."),
        v4(
            "172.16.0.1", 12, "private (172.16.0.0/12)", .peerPrivate, .high,
            "Add denied-peer-ip=172.16.0.0-172.31.255.255 to turnserver.conf."),
        v4(
            "192.168.0.1", 16, "private (192.168.0.0/16)", .peerPrivate, .high,
            "Add denied-peer-ip=192.168.0.0-192.168.255.255 to turnserver.conf."),
        v4(
            "100.64.0.1", 10, "shared address space (100.64.0.0/10, carrier-grade NAT)", .peerSharedSpace, .high,
            "Add denied-peer-ip=100.64.0.0-100.127.255.255 to turnserver.conf."),
        v4(
            "198.18.0.1", 15, "benchmarking (198.18.0.0/15)", .peerBenchmarking, .medium,
            "Add denied-peer-ip=198.18.0.0-198.19.255.255 to turnserver.conf."),
        v4(
            "224.0.0.1", 4, "multicast (224.0.0.0/4)", .peerMulticast, .medium,
            "Add no-multicast-peers to turnserver.conf."),
        v6(
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 128, "loopback (::1)", .peerLoopback, .critical,
            "Remove allow-loopback-peers from turnserver.conf and add denied-peer-ip=::1."),
        v6(
            [0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 7, "unique local (fc00::/7)", .peerPrivate, .high,
            "Add denied-peer-ip=fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff to turnserver.conf."),
        v6(
            [0xFE, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 10, "link-local (fe80::/10)", .peerLinkLocal,
            .high, "Add denied-peer-ip=fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff to turnserver.conf."),
        v6(
            [0xFE, 0xC0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 10,
            "site-local (fec0::/10, deprecated, still "
                + "routed inside some networks)", .peerPrivate, .medium,
            "Add denied-peer-ip=fec0::-feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff to turnserver.conf (coturn 4.13.1 and "
                + "later refuse it by default)."),
    ]

    /// The peers a relay of `family` can be asked about: a relay reaches only its own family. An IPv6 relay is
    /// also asked every forbidden IPv4 range in the IPv6 forms that carry an IPv4 address (IPv4-mapped,
    /// IPv4-compatible, NAT64, 6to4): coturn before 4.9.0 grants the mapped ones whatever its IPv4 deny list
    /// says (CVE-2026-27624), and a NAT64 gateway or 6to4 relay on the path would carry the others.
    public static func peers(for family: TransportAddress.Family) -> [ForbiddenPeer] {
        let own = all.filter { $0.address.family == family }
        guard family == .ipv6 else { return own }
        return own + all.filter { $0.address.family == .ipv4 }.flatMap(\.embedded)
    }

    /// How an IPv4 range is written in IPv6, and the coturn line that closes each form.
    enum Embedding: CaseIterable {
        case mapped, compatible, nat64, sixToFour

        func address(_ v4: [UInt8]) -> [UInt8] {
            switch self {
            case .mapped: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF] + v4
            case .compatible: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] + v4
            case .nat64: [0x00, 0x64, 0xFF, 0x9B, 0, 0, 0, 0, 0, 0, 0, 0] + v4
            case .sixToFour: [0x20, 0x02] + v4 + [0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01]
            }
        }

        /// Where the IPv4 prefix starts in the IPv6 address.
        var offset: Int {
            switch self {
            case .mapped, .compatible, .nat64: 96
            case .sixToFour: 16
            }
        }

        var name: String {
            switch self {
            case .mapped: "IPv4-mapped"
            case .compatible: "IPv4-compatible"
            case .nat64: "NAT64 (64:ff9b::/96)"
            case .sixToFour: "6to4 (2002::/16)"
            }
        }

        var deny: String {
            switch self {
            case .mapped: "denied-peer-ip=::ffff:0.0.0.0-::ffff:255.255.255.255"
            case .compatible: "denied-peer-ip=::1-::ffff:ffff"
            case .nat64: "denied-peer-ip=64:ff9b::-64:ff9b::ffff:ffff"
            case .sixToFour: "denied-peer-ip=2002::-2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
            }
        }
    }

    /// This IPv4 range in each IPv6 form that embeds it, with the same check and severity.
    var embedded: [ForbiddenPeer] {
        Embedding.allCases.map { form in
            let fix =
                form == .mapped
                ? "Upgrade coturn to 4.9.0 or later (CVE-2026-27624: before it, IPv4-mapped peers pass every IPv4 "
                    + "deny); where the distribution's coturn is older, add \(form.deny) to turnserver.conf."
                : "Add \(form.deny) to turnserver.conf."
            return ForbiddenPeer(
                address: TransportAddress(family: .ipv6, address: form.address(address.address), port: 9)!,
                prefixLength: form.offset + prefixLength, range: "\(range), written \(form.name)", check: check,
                severity: severity, fix: fix, cve: form == .mapped ? "CVE-2026-27624" : nil, form: form.name)
        }
    }

    private static func v4(
        _ text: String, _ prefixLength: Int, _ range: String, _ check: AuditCheckID, _ severity: AuditFinding.Severity,
        _ fix: String
    ) -> ForbiddenPeer {
        ForbiddenPeer(
            address: TransportAddress(ipv4: text, port: 9)!, prefixLength: prefixLength, range: range, check: check,
            severity: severity, fix: fix)
    }

    private static func v6(
        _ bytes: [UInt8], _ prefixLength: Int, _ range: String, _ check: AuditCheckID,
        _ severity: AuditFinding.Severity,
        _ fix: String
    ) -> ForbiddenPeer {
        ForbiddenPeer(
            address: TransportAddress(family: .ipv6, address: bytes, port: 9)!, prefixLength: prefixLength,
            range: range, check: check, severity: severity, fix: fix)
    }

    /// Whether `address` lies in this peer's range.
    public func covers(_ address: TransportAddress) -> Bool {
        guard address.family == self.address.family else { return false }
        var bits = prefixLength
        for (mine, theirs) in zip(self.address.address, address.address) where bits > 0 {
            let mask: UInt8 = bits >= 8 ? 0xFF : ~(0xFF >> UInt8(bits))
            if mine & mask != theirs & mask { return false }
            bits -= 8
        }
        return true
    }

    /// A global address of `family` that a server for calls must relay to: the audit asks a permission for it
    /// (nothing is sent), so that a deny list too wide to let calls through is caught. Public DNS resolvers:
    /// no deny list meant for Matrix calls covers them.
    public static func publicControl(_ family: TransportAddress.Family) -> TransportAddress {
        family == .ipv4
            ? TransportAddress(ipv4: "8.8.8.8", port: 9)!
            : TransportAddress(
                family: .ipv6, address: [0x20, 0x01, 0x48, 0x60, 0x48, 0x60, 0, 0, 0, 0, 0, 0, 0, 0, 0x88, 0x88],
                port: 9)!
    }

    /// The forbidden range `address` lies in, the narrowest first (169.254.169.254 before 169.254.0.0/16).
    public static func covering(_ address: TransportAddress) -> ForbiddenPeer? {
        all.filter { $0.covers(address) }.max { $0.prefixLength < $1.prefixLength }
    }
}

extension ForbiddenPeer {
    /// Loopback, RFC 1918, shared address space, link-local, unique local, site-local: no peer could reach it.
    public static func isPrivate(_ address: TransportAddress) -> Bool {
        let bytes = address.address
        switch address.family {
        case .ipv4:
            return bytes[0] == 10 || bytes[0] == 127 || (bytes[0] == 172 && bytes[1] & 0xF0 == 16)
                || (bytes[0] == 192 && bytes[1] == 168) || (bytes[0] == 100 && bytes[1] & 0xC0 == 64)
                || (bytes[0] == 169 && bytes[1] == 254)
        case .ipv6:
            // Unique local, link-local, site-local (fec0::/10, deprecated but still private), loopback.
            return bytes[0] & 0xFE == 0xFC || (bytes[0] == 0xFE && bytes[1] & 0x80 == 0x80)
                || bytes == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
        }
    }
}
