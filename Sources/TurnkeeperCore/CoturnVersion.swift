/// A coturn version as its SOFTWARE attribute ("Coturn-4.6.1 'Gorst'"), `turnserver --version` ("4.6.1") or a
/// Debian package ("4.6.1-1") names it; the vulnerabilities each version range is known to carry, and the
/// options a version warns on. Pure.
public struct CoturnVersion: Sendable, Comparable, CustomStringConvertible, Hashable {
    public let parts: [Int]

    public init(_ parts: [Int]) { self.parts = parts }

    /// "Coturn-4.6.1 'Gorst'" → 4.6.1; nil for anything else.
    public init?(software: String) {
        guard software.lowercased().hasPrefix("coturn-") else { return nil }
        self.init(text: String(software.dropFirst("coturn-".count).prefix { $0.isNumber || $0 == "." }))
    }

    /// "4.6.1", "4.6.1-1" (the Debian revision is ignored), "4.17.1"; nil for anything else.
    public init?(text: String) {
        let numbers = text.prefix { $0.isNumber || $0 == "." }
        let parts = numbers.split(separator: ".", omittingEmptySubsequences: false).map { Int($0) }
        guard parts.count >= 2, parts.count <= 4, parts.allSatisfy({ $0 != nil && $0! < 1000 }) else { return nil }
        self.parts = parts.compactMap { $0 }
    }

    /// Debian's coturn in bookworm, trixie and sid: what `provision` renders for unless told otherwise.
    public static let debian = CoturnVersion([4, 6, 1])

    /// From 4.7.0 coturn has no `no-tlsv1` or `no-tlsv1_1` (it warns on them; OpenSSL's defaults set the
    /// lowest TLS version) and sends no SOFTWARE unless asked (`no-software-attribute` is redundant).
    public var tlsFloorFromOpenSSL: Bool { self >= CoturnVersion([4, 7, 0]) }
    public var softwareOffByDefault: Bool { self >= CoturnVersion([4, 7, 0]) }
    /// From 4.10.0 the telnet CLI is off unless `--cli`, and `no-cli` is logged as an error.
    public var cliOffByDefault: Bool { self >= CoturnVersion([4, 10, 0]) }

    public static func < (lhs: CoturnVersion, rhs: CoturnVersion) -> Bool {
        for index in 0..<max(lhs.parts.count, rhs.parts.count) {
            let left = index < lhs.parts.count ? lhs.parts[index] : 0
            let right = index < rhs.parts.count ? rhs.parts[index] : 0
            if left != right { return left < right }
        }
        return false
    }

    public var description: String { parts.map(String.init).joined(separator: ".") }

    public struct Advisory: Sendable {
        public let id: String
        public let what: String
        public let fixedIn: CoturnVersion
        /// The audit check whose finding confirms it, when one can.
        public let check: String?
        /// What tests it, or why nothing from outside can.
        public let test: String
        /// The line that closes it where the distribution's coturn lags, when one does.
        public let configFix: String?
        public var needsIPv6: Bool { id == "CVE-2026-27624" }
    }

    /// The advisories this version carries.
    public var advisories: [Advisory] { Self.advisories.filter { self < $0.fixedIn } }

    /// From the advisories' own texts (GHSA, NVD); the versions are where each was fixed upstream.
    public static let advisories: [Advisory] = [
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
