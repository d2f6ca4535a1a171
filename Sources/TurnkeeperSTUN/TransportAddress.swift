/// An IP address and port as STUN carries them: 4 or 16 address bytes in network order.
public struct TransportAddress: Sendable, Hashable, CustomStringConvertible {
    public enum Family: UInt8, Sendable, Hashable {
        case ipv4 = 0x01
        case ipv6 = 0x02

        public var addressLength: Int { self == .ipv4 ? 4 : 16 }
    }

    public let family: Family
    public let address: [UInt8]
    public let port: UInt16

    /// nil unless `address` has the length the family needs.
    public init?(family: Family, address: [UInt8], port: UInt16) {
        guard address.count == family.addressLength else { return nil }
        self.family = family
        self.address = address
        self.port = port
    }

    public init?(ipv4 text: String, port: UInt16) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard !part.isEmpty, part.count <= 3, let value = UInt8(part) else { return nil }
            bytes.append(value)
        }
        self.init(family: .ipv4, address: bytes, port: port)
    }

    /// The address alone: `192.0.2.1` or `2001:db8::1` (RFC 5952 shortest form).
    public var host: String {
        switch family {
        case .ipv4:
            return address.map(String.init).joined(separator: ".")
        case .ipv6:
            // RFC 5952 §5: an IPv4-mapped address ends in its dotted IPv4 form.
            if address[0..<10].allSatisfy({ $0 == 0 }) && address[10] == 0xFF && address[11] == 0xFF {
                return "::ffff:" + address[12..<16].map(String.init).joined(separator: ".")
            }
            var groups: [UInt16] = []
            for index in stride(from: 0, to: 16, by: 2) {
                groups.append(UInt16(address[index]) << 8 | UInt16(address[index + 1]))
            }
            // The longest run of two or more zero groups becomes "::".
            var bestStart = -1
            var bestLength = 1
            var index = 0
            while index < 8 {
                if groups[index] == 0 {
                    var end = index
                    while end < 8 && groups[end] == 0 { end += 1 }
                    if end - index > bestLength {
                        bestStart = index
                        bestLength = end - index
                    }
                    index = end
                } else {
                    index += 1
                }
            }
            let hex = groups.map { String($0, radix: 16) }
            if bestStart < 0 { return hex.joined(separator: ":") }
            let head = hex[..<bestStart].joined(separator: ":")
            let tail = hex[(bestStart + bestLength)...].joined(separator: ":")
            return head + "::" + tail
        }
    }

    /// `192.0.2.1:3478` or `[2001:db8::1]:3478`.
    public var description: String { family == .ipv4 ? "\(host):\(port)" : "[\(host)]:\(port)" }

    /// Loopback, RFC 1918, CGNAT (100.64/10), link-local, unique-local (fc00::/7) and the like:
    /// addresses a peer on the Internet cannot reach.
    public var isPrivate: Bool {
        switch family {
        case .ipv4:
            let a = address[0]
            let b = address[1]
            return a == 10 || a == 127 || (a == 172 && (16...31).contains(b)) || (a == 192 && b == 168)
                || (a == 100 && (64...127).contains(b)) || (a == 169 && b == 254) || a == 0
                // Benchmarking networks (RFC 2544), never routed on the internet.
                || (a == 198 && (18...19).contains(b))
        case .ipv6:
            let isLoopback = address[0..<15].allSatisfy { $0 == 0 } && address[15] == 1
            // fc00::/7, fe80::/10 and the deprecated site-local fec0::/10.
            return isLoopback || address[0] & 0xFE == 0xFC || (address[0] == 0xFE && address[1] & 0x80 == 0x80)
        }
    }

    public var isLoopback: Bool {
        family == .ipv4 ? address[0] == 127 : (address[0..<15].allSatisfy { $0 == 0 } && address[15] == 1)
    }
}
