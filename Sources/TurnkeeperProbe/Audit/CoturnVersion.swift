/// A coturn version as its SOFTWARE attribute names it ("Coturn-4.6.1 'Gorst'"), and the vulnerabilities each
/// version range is known to carry. Pure.
struct CoturnVersion: Comparable, CustomStringConvertible {
    let parts: [Int]

    init(_ parts: [Int]) { self.parts = parts }

    /// "Coturn-4.6.1 'Gorst'" → 4.6.1; nil for anything else.
    init?(software: String) {
        guard software.lowercased().hasPrefix("coturn-") else { return nil }
        let text = software.dropFirst("coturn-".count).prefix { $0.isNumber || $0 == "." }
        let parts = text.split(separator: ".").compactMap { Int($0) }
        guard parts.count >= 2, parts.count <= 4 else { return nil }
        self.parts = parts
    }

    static func < (lhs: CoturnVersion, rhs: CoturnVersion) -> Bool {
        for index in 0..<max(lhs.parts.count, rhs.parts.count) {
            let left = index < lhs.parts.count ? lhs.parts[index] : 0
            let right = index < rhs.parts.count ? rhs.parts[index] : 0
            if left != right { return left < right }
        }
        return false
    }

    var description: String { parts.map(String.init).joined(separator: ".") }

    struct Advisory {
        let id: String
        let what: String
        let fixedIn: CoturnVersion
        /// The audit check whose finding confirms it, when one can.
        let check: String?
        /// What tests it, or why nothing from outside can.
        let test: String
        /// The line that closes it where the distribution's coturn lags, when one does.
        let configFix: String?
        var needsIPv6: Bool { id == "CVE-2026-27624" }
    }

    /// From the advisories' own texts (GHSA, NVD); the versions are where each was fixed upstream.
    static let advisories: [Advisory] = [
        Advisory(
            id: "CVE-2020-26262", what: "0.0.0.0 and [::] reach loopback", fixedIn: CoturnVersion([4, 5, 2]),
            check: "peer-this-network", test: "a permission for 0.0.0.0",
            configFix: "denied-peer-ip=0.0.0.0-0.255.255.255"),
        Advisory(
            id: "CVE-2026-27624", what: "IPv4-mapped peers pass every IPv4 deny on an IPv6 relay",
            fixedIn: CoturnVersion([4, 9, 0]), check: "peer-loopback",
            test: "permissions for ::ffff: peers on an IPv6 relay",
            configFix: "denied-peer-ip=::ffff:0.0.0.0-::ffff:255.255.255.255"),
        Advisory(
            id: "CVE-2026-40613", what: "one crafted packet kills turnserver on ARM64 (misaligned reads)",
            fixedIn: CoturnVersion([4, 10, 0]), check: nil,
            test: "it would crash the server; it affects ARM64 builds only", configFix: nil),
        Advisory(
            id: "CVE-2026-43994", what: "stack overflow in OAuth token decoding, with --oauth",
            fixedIn: CoturnVersion([4, 10, 0]), check: nil,
            test: "it needs a crafted OAuth token; it affects coturn with oauth enabled only",
            configFix: "leave oauth off"),
    ]
}
