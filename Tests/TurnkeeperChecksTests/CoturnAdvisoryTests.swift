import Testing
import TurnkeeperStores

@testable import TurnkeeperChecks

/// `check` names the installed coturn's known vulnerabilities, each with what turnserver.conf does about it.
@Suite("check: the installed coturn's advisories")
struct CoturnAdvisoryTests {
    func findings(
        _ package: String?, _ conf: String?, machine: String = "x86_64", hasIPv6: Bool = true, configured: Bool = true
    ) -> [Checker.Finding] {
        CoturnAdvisories.findings(
            .init(package: package, machine: machine, hasIPv6: hasIPv6),
            conf: conf.map { ("/etc/turnserver.conf", CoturnConfigStore.parse(Array($0.utf8)), configured) })
    }

    func finding(_ id: String, in findings: [Checker.Finding]) -> Checker.Finding? {
        findings.first { $0.summary.contains(id) }
    }

    @Test("Debian's 4.6.1 with an IPv6 relay and no mapped deny: CVE-2026-27624 is a problem with both fixes")
    func vulnerable() throws {
        let found = findings("4.6.1-1", "relay-ip=203.0.113.7\nrelay-ip=2001:db8::7\n")
        let mapped = try #require(finding("CVE-2026-27624", in: found))
        #expect(!mapped.ok && mapped.summary.contains("coturn 4.6.1-1 carries CVE-2026-27624"))
        #expect(mapped.fix?.contains("Upgrade coturn to 4.9.0") == true)
        #expect(mapped.fix?.contains("denied-peer-ip=::ffff:0.0.0.0-::ffff:255.255.255.255") == true)
        // No relay-ip and no listening-ip: coturn relays on every address, IPv6 ones included.
        #expect(finding("CVE-2026-27624", in: findings("4.6.1-1", "realm=x\n"))?.ok == false)
        // The other advisories do not apply here: x86_64, no oauth.
        #expect(finding("CVE-2026-40613", in: found)?.ok == true)
        #expect(finding("CVE-2026-43994", in: found)?.ok == true)
        // On ARM64 it applies, and only the upgrade fixes it: said, not failed, so that check can pass.
        let arm = finding("CVE-2026-40613", in: findings("4.6.1-1", "", machine: "aarch64"))
        #expect(arm?.ok == true && arm?.summary.contains("upgrade to 4.10.0") == true, "\(String(describing: arm))")
        #expect(finding("CVE-2026-43994", in: findings("4.6.1-1", "oauth\n"))?.ok == false)
        // A default file turnkeeper was not told is coturn's: said, with the audit that decides, not failed.
        let unjudged = finding("CVE-2026-27624", in: findings("4.6.1-1", "relay-ip=::1\n", configured: false))
        #expect(unjudged?.ok == true && unjudged?.summary.contains("turnkeeper audit") == true)
    }

    @Test("Closed by the deny line, or by IPv4-only relays; a Debian security revision may carry the fix")
    func closed() {
        let denied = findings("4.6.1-1", "denied-peer-ip=::ffff:0.0.0.0-::ffff:255.255.255.255\n")
        #expect(finding("CVE-2026-27624", in: denied)?.ok == true)
        #expect(finding("CVE-2026-27624", in: denied)?.summary.contains("closes it") == true)
        let ipv4 = findings("4.6.1-1", "listening-ip=203.0.113.7\nrelay-ip=203.0.113.7\n")
        #expect(finding("CVE-2026-27624", in: ipv4)?.ok == true)
        #expect(finding("CVE-2026-27624", in: findings("4.6.1-1", "realm=x\n", hasIPv6: false))?.ok == true)
        let patched = finding("CVE-2026-27624", in: findings("4.6.1-1+deb12u1", "relay-ip=::1\n"))
        #expect(patched?.ok == true && patched?.summary.contains("may carry a backported fix") == true)
    }

    @Test("A fixed coturn, none installed, and version text that is not a version")
    func others() {
        #expect(findings("4.17.1-1", nil).map(\.ok) == [true])
        #expect(findings("4.17.1-1", nil).first?.summary.contains("none of the vulnerabilities") == true)
        #expect(findings(nil, nil).first?.summary.contains("not installed here as a Debian package") == true)
        let odd = findings("\u{1B}[31mx", nil)
        #expect(odd.map(\.ok) == [true] && !(odd.first?.summary.contains("\u{1B}") ?? true))
    }
}
