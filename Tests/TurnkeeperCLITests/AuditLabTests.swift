import Foundation
import TestSupport
import Testing
import TurnkeeperCredentials

/// `turnkeeper audit` from alice's namespace against coturn in the lab, configured wrongly one way at a time
/// and once correctly. The TURN host's only route out ends inside its own namespace (scripts/natlab.sh), and
/// its counter proves nothing was sent toward a forbidden address.
@Suite("turnkeeper audit in the NAT lab", .mayBlock, .tags(.live))
struct AuditLabTests {
    /// The deny list of REFERENCE.md without 192.0.2.0/24, 198.51.100.0/24 and 203.0.113.0/24 (in the lab
    /// those are the "public" network and its hosts), and quotas.
    static let hardened = [
        "user-quota=12", "total-quota=1200",
        "denied-peer-ip=0.0.0.0-0.255.255.255", "denied-peer-ip=10.0.0.0-10.255.255.255",
        "denied-peer-ip=100.64.0.0-100.127.255.255", "denied-peer-ip=127.0.0.0-127.255.255.255",
        "denied-peer-ip=169.254.0.0-169.254.255.255", "denied-peer-ip=172.16.0.0-172.31.255.255",
        "denied-peer-ip=192.168.0.0-192.168.255.255", "denied-peer-ip=198.18.0.0-198.19.255.255",
        "denied-peer-ip=240.0.0.0-255.255.255.255", "no-multicast-peers",
    ]

    struct Audit {
        let status: Int32
        let report: [String: Any]
        let text: String
        var findings: [[String: Any]] { report["findings"] as? [[String: Any]] ?? [] }
        var checks: Set<String> { Set(findings.compactMap { $0["check"] as? String }) }
        func finding(_ check: String) -> [String: Any]? { findings.first { $0["check"] as? String == check } }
    }

    static func audit(_ lab: NATLab, _ arguments: [String]) throws -> Audit {
        let output = try lab.run(
            "alice", [TurnkeeperBinary.path, "audit", "--json"] + arguments, timeout: .seconds(120))
        let report = (try? JSONSerialization.jsonObject(with: Data(output.stdout.utf8))) as? [String: Any] ?? [:]
        return Audit(status: output.status, report: report, text: output.description)
    }

    /// Packets the TURN host sent out of the lab's network (into its sink route).
    static func sent(_ lab: NATLab) throws -> Int {
        let output = try lab.run("turn", ["/bin/cat", "/sys/class/net/sink0/statistics/tx_packets"])
        return Int(output.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }

    @Test("Wrong one way at a time, each setting is its finding with its fix; the correct server has none")
    func misconfigurations() throws {
        let lab = try NATLab()
        defer { #expect(lab.down().isEmpty, "namespaces left behind") }
        let secret = try TurnSecret.generate()
        let text = secret.withExposedBytes { String(decoding: $0, as: UTF8.self) }
        let secretFile = try lab.directory.write("secret", text + "\n")
        let target = ["turn:203.0.113.10?transport=udp", "--secret-file", secretFile]
        let retired = try TurnSecret.generate().withExposedBytes { String(decoding: $0, as: UTF8.self) }
        let retiredFile = try lab.directory.write("retired", retired + "\n")
        func coturn(extra: [String] = [], without: Set<String> = [], secrets: [String]? = nil) throws -> LabCoturn {
            try LabCoturn(
                lab: lab, host: "turn", listen: ["203.0.113.10"], secrets: secrets ?? [text], extra: extra,
                without: without)
        }

        // Correct: the deny list, no multicast, no SOFTWARE. Nothing found, exit 0.
        var server = try coturn(extra: Self.hardened)
        let clean = try Self.audit(lab, target + ["--retired-secret-file", retiredFile])
        server.stop()
        #expect(clean.status == 0 && clean.findings.isEmpty && clean.report["passed"] as? Bool == true, "\(clean.text)")
        #expect(
            clean.report["notTested"] as? [String]
                == ["certificate", "coturn-version", "data-path", "external-address", "tls-versions"])
        let checks = (clean.report["targets"] as? [[String: Any]])?.first?["checks"] as? [[String: Any]] ?? []
        let quota = checks.first { $0["check"] as? String == "quotas" }
        // user-quota=12, less those released a moment before, which coturn still counts.
        #expect((quota?["detail"] as? String)?.contains("were held (486 Allocation Quota Reached)") == true)

        // A secret retired by hand, but left in coturn: its credentials still relay.
        server = try coturn(extra: Self.hardened, secrets: [text, retired])
        let stale = try Self.audit(lab, target + ["--retired-secret-file", retiredFile])
        server.stop()
        #expect(stale.checks == ["retired-secret-accepted"], "\(stale.text)")

        // No deny list at all (coturn's default): every private range is open; loopback stays refused.
        server = try coturn()
        let open = try Self.audit(lab, target)
        server.stop()
        #expect(open.status == 1, "\(open.text)")
        for check in ["peer-private", "peer-metadata", "peer-link-local", "peer-shared-space", "peer-benchmarking"] {
            #expect(open.checks.contains(check), "\(check): \(open.text)")
        }
        #expect(!open.checks.contains("peer-loopback") && open.checks.contains("quota-missing"), "\(open.text)")
        #expect(open.finding("peer-metadata")?["severity"] as? String == "critical")
        #expect(
            (open.finding("peer-metadata")?["fix"] as? String)?.contains("denied-peer-ip=169.254.0.0-169.254.255.255")
                == true)
        #expect((open.finding("peer-metadata")?["evidence"] as? String)?.contains("nothing was sent there") == true)

        // allow-loopback-peers.
        server = try coturn(extra: Self.hardened.filter { !$0.contains("127.0.0.0") } + ["allow-loopback-peers"])
        let loopback = try Self.audit(lab, target)
        server.stop()
        #expect(loopback.checks == ["peer-loopback"], "\(loopback.text)")
        #expect((loopback.finding("peer-loopback")?["fix"] as? String)?.contains("allow-loopback-peers") == true)

        // no-auth: anyone gets a relay. (coturn refuses to start with no-auth beside a secret.)
        server = try coturn(extra: Self.hardened + ["no-auth"], without: ["use-auth-secret"], secrets: [])
        let anyone = try Self.audit(lab, ["turn:203.0.113.10?transport=udp"])
        server.stop()
        #expect(anyone.checks.contains("no-auth") && anyone.status == 1, "\(anyone.text)")

        // SOFTWARE in every answer.
        server = try coturn(extra: Self.hardened, without: ["no-software-attribute"])
        let software = try Self.audit(lab, target)
        server.stop()
        #expect(software.checks == ["software-disclosed"], "\(software.text)")
        #expect((software.finding("software-disclosed")?["evidence"] as? String)?.contains("Coturn") == true)

        #expect(try Self.sent(lab) == 0, "the TURN host sent packets toward an address outside the lab")
        // The counter counts: a datagram toward 10.0.0.1 from the TURN host shows in it.
        _ = try lab.run("turn", ["/bin/bash", "-c", "echo x > /dev/udp/10.0.0.1/9"])
        #expect(try Self.sent(lab) > 0)
    }

    @Test("turns: TLS 1.0 offered (a cipher-list lowering OpenSSL's level) and a certificate expiring in 5 days")
    func tls() throws {
        let lab = try NATLab()
        defer { #expect(lab.down().isEmpty, "namespaces left behind") }
        let certificates = try TestCertificates(in: lab.directory)
        let secret = try TurnSecret.generate().withExposedBytes { String(decoding: $0, as: UTF8.self) }
        let secretFile = try lab.directory.write("secret", secret + "\n")
        let target = ["turns:203.0.113.10:5349", "--secret-file", secretFile, "--ca-file", certificates.caFile]
        func coturn(_ certificate: (certificate: String, key: String), _ tls: [String]) throws -> LabCoturn {
            try LabCoturn(
                lab: lab, host: "turn", listen: ["203.0.113.10"], secrets: [secret],
                extra: Self.hardened + [
                    "tls-listening-port=5349", "cert=\(certificate.certificate)", "pkey=\(certificate.key)",
                ] + tls, without: ["no-tls"])
        }

        var server = try coturn(certificates.labExpiringSoon, ["cipher-list=\"DEFAULT:@SECLEVEL=0\""])
        let weak = try Self.audit(lab, target)
        server.stop()
        #expect(weak.checks == ["tls-old-version", "certificate-expiring"], "\(weak.text)")
        #expect((weak.finding("tls-old-version")?["fix"] as? String)?.contains("no-tlsv1_1") == true)
        #expect((weak.finding("certificate-expiring")?["problem"] as? String)?.contains("expires in 4 days") == true)

        // A certificate for another name than the one clients use.
        server = try coturn(certificates.turn, ["no-tlsv1", "no-tlsv1_1"])
        let misnamed = try Self.audit(lab, target)
        server.stop()
        #expect(misnamed.checks == ["certificate-name"], "\(misnamed.text)")
        #expect((misnamed.finding("certificate-name")?["evidence"] as? String)?.contains("turn.example.com") == true)

        // The same lowered level, with TLS 1.0 and 1.1 turned off, and a certificate valid for 30 days: clean.
        server = try coturn(certificates.lab, ["cipher-list=\"DEFAULT:@SECLEVEL=0\"", "no-tlsv1", "no-tlsv1_1"])
        defer { server.stop() }
        let strong = try Self.audit(lab, target)
        #expect(strong.status == 0 && strong.findings.isEmpty, "\(strong.text)")
        #expect(
            strong.report["notTested"] as? [String] == [
                "coturn-version", "data-path", "external-address", "retired-secret",
            ],
            "\(strong.text)")
        let checks = (strong.report["targets"] as? [[String: Any]])?.first?["checks"] as? [[String: Any]] ?? []
        #expect(checks.contains { $0["check"] as? String == "certificate-chain" && $0["result"] as? String == "pass" })
    }

    @Test("--reflector: a wrong external-ip behind the port-forwarding NAT is found; the right one passes")
    func externalAddress() throws {
        let lab = try NATLab()
        defer { #expect(lab.down().isEmpty, "namespaces left behind") }
        let secret = try TurnSecret.generate()
        let text = secret.withExposedBytes { String(decoding: $0, as: UTF8.self) }
        let secretFile = try lab.directory.write("secret", text + "\n")
        // The reflector: a plain STUN server on the Synapse host's public address.
        let reflector = try LabCoturn(lab: lab, host: "hs", listen: ["203.0.113.20"], secrets: [text])
        defer { reflector.stop() }
        let target = [
            "turn:203.0.113.30?transport=udp", "--secret-file", secretFile, "--reflector", "203.0.113.20:3478",
        ]

        var hidden = try LabCoturn(
            lab: lab, host: "turnp", listen: ["198.18.0.10"], externalIP: "203.0.113.99/198.18.0.10", secrets: [text],
            extra: Self.hardened.filter { !$0.contains("198.18.0.0") })
        let wrong = try Self.audit(lab, target)
        hidden.stop()
        #expect(wrong.status == 1 && wrong.checks.contains("external-ip-mismatch"), "\(wrong.text)")
        let finding = wrong.finding("external-ip-mismatch")
        #expect((finding?["evidence"] as? String)?.contains("203.0.113.30:") == true, "\(wrong.text)")
        #expect((finding?["fix"] as? String)?.contains("external-ip=203.0.113.30/") == true, "\(wrong.text)")

        // --data-peer: a STUN server the admin runs on the TURN host's private network (NAT T's LAN side).
        let inside = try LabCoturn(lab: lab, host: "natt", listen: ["198.18.0.1"], secrets: [text])
        defer { inside.stop() }
        hidden = try LabCoturn(
            lab: lab, host: "turnp", listen: ["198.18.0.10"], externalIP: "203.0.113.30/198.18.0.10", secrets: [text],
            extra: Self.hardened.filter { !$0.contains("198.18.0.0") })
        let reaching = try Self.audit(lab, target + ["--data-peer", "198.18.0.1:3478"])
        hidden.stop()
        #expect(reaching.checks.contains("data-path"), "\(reaching.text)")
        #expect(
            (reaching.finding("data-path")?["evidence"] as? String)?.contains("to 198.18.0.1:3478 was answered") == true
        )

        // A reflector on a private network is refused before anything is sent.
        let refused = try lab.run(
            "alice",
            [
                TurnkeeperBinary.path, "audit", "turn:203.0.113.30", "--secret-file", secretFile, "--reflector",
                "10.0.0.1:3478",
            ])
        #expect(refused.status == 2 && refused.stderr.contains("use --data-peer"), "\(refused)")

        hidden = try LabCoturn(
            lab: lab, host: "turnp", listen: ["198.18.0.10"], externalIP: "203.0.113.30/198.18.0.10", secrets: [text],
            extra: Self.hardened.filter { !$0.contains("198.18.0.0") }
                + ["denied-peer-ip=198.18.0.0-198.18.0.9", "denied-peer-ip=198.18.0.11-198.19.255.255"])
        defer { hidden.stop() }
        let right = try Self.audit(lab, target + ["--data-peer", "198.18.0.1:3478"])
        #expect(!right.checks.contains("data-path"), "\(right.text)")
        #expect(!right.checks.contains("external-ip-mismatch"), "\(right.text)")
        let targets = right.report["targets"] as? [[String: Any]] ?? []
        let external = (targets.first?["checks"] as? [[String: Any]])?.first {
            $0["check"] as? String == "external-address"
        }
        #expect(external?["result"] as? String == "pass", "\(right.text)")
    }
}
