import Glibc
import TurnkeeperCore
import TurnkeeperExecution
import TurnkeeperRotation
import TurnkeeperStores

/// `check` on a host that runs coturn: the known vulnerabilities of the installed coturn, each with what
/// turnserver.conf already does about it, and both fixes (the upgrade, and the line that closes it meanwhile).
enum CoturnAdvisories {
    /// What was read about the installed coturn.
    struct Installed: Sendable {
        /// The Debian package version ("4.6.1-1"), or nil when coturn is not a Debian package here.
        var package: String?
        /// The machine's architecture (`uname -m`): one advisory affects ARM64 builds only.
        var machine: String
        /// Whether this host has an IPv6 address: coturn without relay-ip or listening-ip relays on all.
        var hasIPv6 = true
    }

    /// Whether coturn may hand out an IPv6 relay (any client can ask for one): relay-ip lines decide, else
    /// listening-ip lines, else every address of the host.
    static func mayRelayIPv6(_ lines: [CoturnConfigStore.Line], hostHasIPv6: Bool) -> Bool {
        let relays = lines.filter { $0.name == "relay-ip" }.compactMap(\.text)
        let listeners = lines.filter { $0.name == "listening-ip" }.compactMap(\.text)
        let addresses = relays.isEmpty ? listeners : relays
        return addresses.isEmpty ? hostHasIPv6 : addresses.contains { $0.contains(":") }
    }

    /// The package version from dpkg and the architecture from uname; reads only.
    static func installed() async -> Installed {
        var name = utsname()
        let machine =
            uname(&name) == 0
            ? withUnsafeBytes(of: name.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) } : "unknown"
        // An absent package makes dpkg-query exit 1, which is an answer here, not an error. Only an installed
        // one counts ("ii"): a removed package keeps its version in dpkg's database.
        let output = try? await CommandRunner.run(
            ["dpkg-query", "--show", "--showformat=${db:Status-Abbrev} ${Version}", "coturn"], what: "dpkg-query",
            timeoutSeconds: 10, capture: true)
        let words =
            output.map { String(decoding: $0.prefix(96), as: UTF8.self) }?
            .split(whereSeparator: \.isWhitespace).map(String.init) ?? []
        let package = words.count == 2 && words[0] == "ii" ? words[1] : nil
        return Installed(package: package, machine: machine, hasIPv6: hostHasIPv6())
    }

    /// An IPv6 address others can reach: neither loopback nor link-local.
    private static func hostHasIPv6() -> Bool {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { return true }
        defer { freeifaddrs(list) }
        var entry = list
        while let current = entry {
            entry = current.pointee.ifa_next
            guard let address = current.pointee.ifa_addr, address.pointee.sa_family == sa_family_t(AF_INET6) else {
                continue
            }
            let bytes = address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                withUnsafeBytes(of: $0.pointee.sin6_addr) { Array($0) }
            }
            let loopback = bytes == [UInt8](repeating: 0, count: 15) + [1]
            let linkLocal = bytes[0] == 0xFE && bytes[1] & 0xC0 == 0x80
            if !loopback && !linkLocal { return true }
        }
        return false
    }

    /// The findings for `installed` against turnserver.conf's `lines` (nil when it was not read). An
    /// advisory the configuration leaves open is a problem only in the file turnkeeper is told is coturn's
    /// (`configured`); in a default file found by chance it is said, with the audit that decides. Pure.
    static func findings(
        _ installed: Installed, conf: (path: String, lines: [CoturnConfigStore.Line], configured: Bool)?
    ) -> [Checker.Finding] {
        guard let package = installed.package else {
            return [
                Checker.Finding(
                    ok: true,
                    summary: "coturn is not installed here as a Debian package, so its version was not checked; "
                        + "`turnkeeper audit` reads SOFTWARE where coturn sends it, and its active checks decide",
                    fix: nil)
            ]
        }
        // Only printable version text: it came from another program.
        let shown = ServerText.escaped(package, limit: 64)
        guard let version = CoturnVersion(text: package) else {
            return [
                Checker.Finding(
                    ok: true,
                    summary: "coturn \(shown) is installed; its version was not understood, so no "
                        + "advisory was matched", fix: nil)
            ]
        }
        let carried = version.advisories
        guard !carried.isEmpty else {
            return [
                Checker.Finding(
                    ok: true, summary: "coturn \(shown) carries none of the vulnerabilities turnkeeper knows", fix: nil)
            ]
        }
        // A Debian security update keeps the upstream version and adds +debNuM or similar: it may carry a fix.
        let revision = package.split(separator: "-", maxSplits: 1).dropFirst().first.map(String.init) ?? ""
        let backported = revision.contains("+") || revision.contains("~")
        let denied = Set(conf?.lines.filter { $0.name == "denied-peer-ip" }.compactMap(\.text) ?? [])
        let names = Set(conf?.lines.compactMap(\.name) ?? [])
        return carried.map { advisory in
            let head =
                "coturn \(shown) carries \(advisory.id) (\(advisory.what); fixed upstream in \(advisory.fixedIn))"
            let upgrade =
                "Upgrade coturn to \(advisory.fixedIn) or later (from backports or upstream) when your distribution "
                + "offers it"
            let maybe =
                backported
                ? " Debian's revision \(ServerText.escaped(revision, limit: 32)) may carry a backported fix: "
                    + "`turnkeeper audit` decides by asking." : ""
            switch advisory.id {
            case "CVE-2026-40613" where !["aarch64", "arm64"].contains(installed.machine):
                return Checker.Finding(
                    ok: true,
                    summary: head + ", which affects ARM64 builds only: this machine is "
                        + "\(installed.machine)", fix: nil)
            case "CVE-2026-27624"
            where conf.map({ !mayRelayIPv6($0.lines, hostHasIPv6: installed.hasIPv6) }) == true:
                return Checker.Finding(
                    ok: true,
                    summary: head + ", which needs an IPv6 relay: \(conf?.path ?? "turnserver.conf") relays IPv4 "
                        + "only (relay-ip). Add \(advisory.configFix ?? "") before giving it an IPv6 relay-ip",
                    fix: nil)
            case "CVE-2026-43994" where !names.contains("oauth"):
                return Checker.Finding(
                    ok: true,
                    summary: head + ", which needs oauth: "
                        + (conf.map { "\($0.path) does not turn it on" } ?? "turnserver.conf was not read"), fix: nil)
            default:
                break
            }
            if let line = advisory.configFix, line.hasPrefix("denied-peer-ip="),
                denied.contains(String(line.dropFirst("denied-peer-ip=".count))), let conf
            {
                return Checker.Finding(
                    ok: true,
                    summary: head + ": \(conf.path) closes it (\(line)); `turnkeeper audit` proves it", fix: nil)
            }
            let meanwhile =
                advisory.configFix.map { line in
                    line.hasPrefix("denied-peer-ip=")
                        ? "; until then add \(line) to \(conf?.path ?? "turnserver.conf") and restart coturn"
                        : "; until then \(line)"
                } ?? "; nothing in the configuration closes it"
            // What the admin cannot change here is said, not failed: check must be able to pass.
            if advisory.configFix == nil || backported {
                return Checker.Finding(
                    ok: true,
                    summary: head + "."
                        + (backported
                            ? maybe
                            : " Nothing in the configuration closes it: upgrade to \(advisory.fixedIn) or later when "
                                + "your distribution offers it"),
                    fix: nil)
            }
            if let conf, !conf.configured {
                return Checker.Finding(
                    ok: true,
                    summary: head + ". Whether \(conf.path) leaves it open was not judged: it is not turnkeeper's "
                        + "coturn.config_file. `turnkeeper audit` decides (\(advisory.test))", fix: nil)
            }
            return Checker.Finding(
                ok: false, summary: head + "." + maybe,
                fix: upgrade + meanwhile
                    + ". `turnkeeper audit` \(advisory.check != nil ? "confirms it" : "cannot test it") ("
                    + advisory.test + ").")
        }
    }
}
