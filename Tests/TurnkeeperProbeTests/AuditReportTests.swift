import Foundation
import Testing
import TurnkeeperCore
import TurnkeeperSTUN

@testable import TurnkeeperAudit
@testable import TurnkeeperProbe

@Suite("turnkeeper audit: the report and its peers")
struct AuditReportTests {
    @Test("Every forbidden peer is of its family, in a range its fix names, and no peer is a public address")
    func peers() {
        // An IPv6 relay is asked its own four ranges and the ten IPv4 ones in four IPv6 forms each.
        #expect(ForbiddenPeer.peers(for: .ipv4).count == 10 && ForbiddenPeer.peers(for: .ipv6).count == 4 + 10 * 4)
        let hosts = ForbiddenPeer.peers(for: .ipv6).map(\.address.host)
        #expect(Set(hosts).count == hosts.count, "two IPv6 forms of one IPv4 range collide")
        for host in ["::ffff:127.0.0.1", "::ffff:169.254.169.254", "::7f00:1", "64:ff9b::a9fe:a9fe", "2002:a00:1::1"] {
            #expect(hosts.contains(host), "\(host) is not asked")
        }
        // RFC 5952 §5: the mapped form is written with its dotted IPv4 address; each carries its own range.
        let mapped = ForbiddenPeer.peers(for: .ipv6).first { $0.address.host == "::ffff:169.254.169.254" }
        #expect(mapped?.check == .peerMetadata && mapped?.severity == .critical && mapped?.cve == "CVE-2026-27624")
        #expect(
            mapped?.covers(
                TransportAddress(
                    family: .ipv6, address: Array(repeating: 0, count: 10) + [0xFF, 0xFF, 169, 254, 169, 254], port: 1)!
            ) == true)
        let compatible = ForbiddenPeer.peers(for: .ipv6).first { $0.address.host == "::a9fe:a9fe" }
        #expect(compatible?.cve == nil && compatible?.fix.contains("denied-peer-ip=::1-::ffff:ffff") == true)
        for peer in ForbiddenPeer.all + ForbiddenPeer.peers(for: .ipv6) {
            #expect(peer.fix.contains("denied-peer-ip=") || peer.fix.contains("no-multicast-peers"), "\(peer)")
            let multicast = peer.address.family == .ipv4 && peer.address.address[0] >= 224
            let thisNetwork = peer.address.family == .ipv4 && peer.address.address[0] == 0
            let benchmarking = peer.address.family == .ipv4 && peer.address.address[0] == 198
            // An IPv4 range written in IPv6 (mapped, compatible, NAT64, 6to4).
            let embedded = peer.range.contains(", written ")
            #expect(ForbiddenPeer.isPrivate(peer.address) || multicast || thisNetwork || benchmarking || embedded)
        }
        #expect(!ForbiddenPeer.isPrivate(TransportAddress(ipv4: "203.0.113.30", port: 1)!))
        #expect(ForbiddenPeer.isPrivate(TransportAddress(ipv4: "172.31.255.255", port: 1)!))
        #expect(!ForbiddenPeer.isPrivate(TransportAddress(ipv4: "172.32.0.1", port: 1)!))
        #expect(ForbiddenPeer.isPrivate(TransportAddress(ipv4: "100.127.0.1", port: 1)!))
        func covering(_ text: String) -> String? {
            ForbiddenPeer.covering(TransportAddress(ipv4: text, port: 1)!)?.check.rawValue
        }
        #expect(covering("169.254.169.254") == "peer-metadata" && covering("169.254.1.1") == "peer-link-local")
        #expect(covering("10.1.2.3") == "peer-private" && covering("172.31.0.1") == "peer-private")
        #expect(covering("172.32.0.1") == nil && covering("8.8.8.8") == nil && covering("203.0.113.30") == nil)
        #expect(covering("198.19.5.5") == "peer-benchmarking" && covering("239.1.2.3") == "peer-multicast")
        #expect(covering("0.0.0.0") == "peer-this-network" && covering("127.9.9.9") == "peer-loopback")
        #expect(!ForbiddenPeer.isPrivate(TransportAddress(ipv4: "100.128.0.1", port: 1)!))
    }

    @Test("Every advisory names a check the audit runs; a check's name is a plain string in JSON, as it always was")
    func checkIDs() throws {
        for advisory in CoturnVersion.advisories {
            guard let named = advisory.check else { continue }
            #expect(AuditCheckID.all.contains(AuditCheckID(rawValue: named)), "\(advisory.id) names \(named)")
        }
        #expect(Set(AuditCheckID.all).count == AuditCheckID.all.count)
        let check = AuditCheck(check: .peerLoopback, result: .pass, detail: "")
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(check)) as? [String: Any]
        #expect(json?["check"] as? String == "peer-loopback")
    }

    @Test("JSON: passed, findings, notTested and targets; an error is not a pass; the text groups a finding")
    func report() throws {
        let finding = AuditFinding(
            check: .peerPrivate, severity: .high, target: "turn:h (192.0.2.1:3478)", problem: "p", evidence: "e",
            fix: "f")
        let udp = AuditTarget(
            uri: "turn:h", address: "192.0.2.1:3478", transport: "udp",
            checks: [
                AuditCheck(check: .peerPrivate, result: .finding, detail: "e"),
                AuditCheck(check: .quotas, result: .notTested, detail: "not yet"),
                AuditCheck(check: .externalAddress, result: .error, detail: "no answer"),
            ])
        var report = AuditReport(targets: [udp, udp], findings: [finding, finding])
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(report)) as? [String: Any]
        #expect(json?["passed"] as? Bool == false)
        #expect(json?["notTested"] as? [String] == ["external-address", "quotas"])
        let text = AuditRenderer().render(report)
        #expect(text.components(separatedBy: "[high] peer-private").count == 2, "said once: \(text)")
        #expect(text.contains("Seen at: turn:h (192.0.2.1:3478), turn:h (192.0.2.1:3478)"))
        #expect(text.contains("1 check(s) could not conclude") || text.contains("2 check(s) could not conclude"))
        report = AuditReport(
            targets: [AuditTarget(uri: "turn:h", address: "a", transport: "udp", checks: [])], findings: [])
        #expect(report.passed)
        #expect(AuditRenderer().render(report).contains("No findings"))
    }

    @Test("Forbidden ranges granted in one IPv6 form are said once, with every peer; JSON keeps one finding each")
    func formsGrouped() throws {
        let target = "turn:h (192.0.2.1:3478)"
        let peers = ForbiddenPeer.peers(for: .ipv6).filter { $0.form != nil }
        let findings = peers.map { peer in
            AuditFinding(
                check: peer.check, severity: peer.severity, target: target, problem: "p \(peer.address.host)",
                evidence: "granted \(peer.address.host)", fix: peer.fix, peer: peer.address.host, cve: peer.cve,
                form: peer.form)
        }
        #expect(findings.count == 40 && Set(findings.compactMap(\.form)).count == 4)
        let report = AuditReport(
            targets: [AuditTarget(uri: "turn:h", address: "192.0.2.1:3478", transport: "udp", checks: [])],
            findings: findings)
        let text = AuditRenderer().render(report)
        #expect(text.components(separatedBy: "forbidden IPv4 ranges are relayed when written").count == 5, "\(text)")
        #expect(
            text.contains("10 forbidden IPv4 ranges are relayed when written IPv4-mapped")
                && text.contains("CVE-2026-27624"))
        #expect(text.contains("::ffff:169.254.169.254") && text.contains("64:ff9b::a9fe:a9fe"))
        #expect(text.components(separatedBy: "  Fix: ").count == 5, "one fix per form")
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(report)) as? [String: Any]
        let forms = (json?["findings"] as? [[String: Any]])?.compactMap { $0["form"] as? String }
        #expect(forms?.count == 40)
    }
}
