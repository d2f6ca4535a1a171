import Glibc

/// An IPv4 or IPv6 address as bytes, parsed with inet_pton: enough to compare against coturn's ranges.
struct IPAddress: Comparable, CustomStringConvertible, Sendable {
    let bytes: [UInt8]
    let text: String

    init?(_ text: String) {
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            bytes = withUnsafeBytes(of: &v4) { Array($0) }
        } else if inet_pton(AF_INET6, text, &v6) == 1 {
            bytes = withUnsafeBytes(of: &v6) { Array($0) }
        } else {
            return nil
        }
        self.text = text
    }

    var isIPv6: Bool { bytes.count == 16 }
    var description: String { text }

    static func < (left: IPAddress, right: IPAddress) -> Bool {
        left.bytes.count != right.bytes.count
            ? left.bytes.count < right.bytes.count : left.bytes.lexicographicallyPrecedes(right.bytes)
    }

    static func == (left: IPAddress, right: IPAddress) -> Bool { left.bytes == right.bytes }
}

/// One `denied-peer-ip` line: a single address or `FIRST-LAST`.
struct AddressRange: Sendable, CustomStringConvertible {
    let first: IPAddress
    let last: IPAddress

    init?(_ text: String) {
        // "::1" has no dash; IPv6 ranges are "a-b" where neither side contains "-".
        let parts = text.split(separator: "-", maxSplits: 1).map(String.init)
        guard let first = IPAddress(parts[0]), let last = IPAddress(parts.count == 2 ? parts[1] : parts[0]),
            first.isIPv6 == last.isIPv6, first <= last
        else { return nil }
        self.first = first
        self.last = last
    }

    func contains(_ address: IPAddress) -> Bool {
        address.isIPv6 == first.isIPv6 && first <= address && address <= last
    }

    var description: String { first == last ? first.text : "\(first.text)-\(last.text)" }

    /// The ranges in the template's denied-peer-ip lines.
    static let denied: [AddressRange] = TurnserverTemplate.text.split(separator: "\n")
        .filter { $0.hasPrefix("denied-peer-ip=") }
        .compactMap { AddressRange(String($0.dropFirst("denied-peer-ip=".count))) }
}
