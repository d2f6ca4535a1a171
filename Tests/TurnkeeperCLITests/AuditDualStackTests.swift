import Foundation
import TestSupport
import Testing
import TurnkeeperCredentials

/// `turnkeeper audit` against Debian's coturn 4.6.1 listening and relaying on both families of loopback, with a
/// hardened Matrix deny list (issue 27): it asks for an IPv6 relay whatever the URI's family, as an attacker does,
/// and asks it for every forbidden IPv4 range in its IPv6 forms. Only permissions are asked: nothing is sent to a
/// forbidden peer.
@Suite("turnkeeper audit, dual stack (CVE-2026-27624)", .serialized, .mayBlock, .tags(.live))
struct AuditDualStackTests {
    /// Synapse's coturn guide's IPv4 deny list and its IPv6 entries, quotas, no multicast.
    static let hardened = [
        "user-quota=12", "total-quota=1200", "no-multicast-peers",
        "denied-peer-ip=0.0.0.0-0.255.255.255", "denied-peer-ip=10.0.0.0-10.255.255.255",
        "denied-peer-ip=100.64.0.0-100.127.255.255", "denied-peer-ip=127.0.0.0-127.255.255.255",
        "denied-peer-ip=169.254.0.0-169.254.255.255", "denied-peer-ip=172.16.0.0-172.31.255.255",
        "denied-peer-ip=192.168.0.0-192.168.255.255", "denied-peer-ip=198.18.0.0-198.19.255.255",
        "denied-peer-ip=240.0.0.0-255.255.255.255", "denied-peer-ip=::1",
        "denied-peer-ip=fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "denied-peer-ip=fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "denied-peer-ip=fec0::-feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    ]

    /// What closes the IPv4 ranges written in IPv6 on coturn 4.6.1.
    static let embeddedDenies = [
        "denied-peer-ip=::ffff:0.0.0.0-::ffff:255.255.255.255", "denied-peer-ip=::1-::ffff:ffff",
        "denied-peer-ip=64:ff9b::-64:ff9b::ffff:ffff", "denied-peer-ip=2002::-2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    ]

    struct Audit {
        let status: Int32
        let findings: [[String: Any]]
        let text: String
        func found(_ peer: String) -> [String: Any]? { findings.first { $0["peer"] as? String == peer } }
    }

    func audit(_ server: CoturnServer, _ uri: String, secretFile: String) throws -> Audit {
        let output = try TurnkeeperBinary.run(
            ["audit", "--json", uri, "--secret-file", secretFile], timeout: .seconds(180))
        let report = (try? JSONSerialization.jsonObject(with: Data(output.stdout.utf8))) as? [String: Any] ?? [:]
        return Audit(
            status: output.status, findings: report["findings"] as? [[String: Any]] ?? [],
            text: output.description)
    }

    func server(_ extra: [String], secret: String) async throws -> CoturnServer {
        var options = CoturnServer.Options()
        options.ipv6 = true
        options.allowLoopbackPeers = false
        options.extraLines = extra
        return try await Self.accepting(CoturnServer(secrets: [secret], options: options), secret)
    }

    /// `coturn` once it grants an allocation with `secret`: right after its start, coturn may refuse logins
    /// while it sets up its user database. At most 50 tries, 100 ms apart.
    static func accepting(_ coturn: CoturnServer, _ secret: String) async throws -> CoturnServer {
        let credential = try CredentialMinter(secret: TurnSecret(adopting: secret, source: "test"))
            .credential(user: "@a:b", expiry: Int64(Date().timeIntervalSince1970) + 600)
        for _ in 0..<50 {
            if try await TURNAllocation.succeeds(
                port: coturn.port, username: credential.username, password: credential.password)
            {
                return coturn
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestFailure("coturn never accepted the test's secret")
    }

    @Test(
        "Vulnerable from either family's URI; a partial mapped deny still leaks the metadata endpoint; the fix is clean"
    )
    func mappedPeers() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let secret = try TurnSecret.generate().withExposedBytes { String(decoding: $0, as: UTF8.self) }
        let secretFile = try directory.write("secret", secret + "\n")

        // The hardened IPv4 list alone: an IPv6 relay, asked for over the IPv4 listener too, reaches them all.
        var coturn = try await server(Self.hardened, secret: secret)
        for uri in ["turn:127.0.0.1:\(coturn.port)?transport=udp", "turn:[::1]:\(coturn.port)?transport=udp"] {
            let vulnerable = try audit(coturn, uri, secretFile: secretFile)
            #expect(vulnerable.status == 1, "\(uri): \(vulnerable.text)")
            for peer in ["::ffff:127.0.0.1", "::ffff:169.254.169.254", "::ffff:10.0.0.1", "::ffff:0.0.0.0"] {
                let finding = vulnerable.found(peer)
                #expect(finding?["cve"] as? String == "CVE-2026-27624", "\(uri) \(peer): \(vulnerable.text)")
                #expect((finding?["fix"] as? String)?.contains("4.9.0") == true)
            }
            #expect(vulnerable.found("::ffff:127.0.0.1")?["severity"] as? String == "critical")
            // The plain IPv6 entries of the list hold.
            #expect(vulnerable.found("::1") == nil && vulnerable.found("fd00::1") == nil, "\(vulnerable.text)")
        }
        coturn.stop()

        // Loopback's mapped range denied, the rest not: the metadata endpoint is still reachable.
        coturn = try await server(
            Self.hardened + ["denied-peer-ip=::ffff:127.0.0.0-::ffff:127.255.255.255"], secret: secret)
        let partial = try audit(coturn, "turn:127.0.0.1:\(coturn.port)?transport=udp", secretFile: secretFile)
        coturn.stop()
        #expect(partial.status == 1 && partial.found("::ffff:127.0.0.1") == nil, "\(partial.text)")
        #expect(partial.found("::ffff:169.254.169.254")?["check"] as? String == "peer-metadata", "\(partial.text)")

        // Every embedded form denied: clean, from the IPv4 URI and from the IPv6 one.
        coturn = try await server(Self.hardened + Self.embeddedDenies, secret: secret)
        defer { coturn.stop() }
        for uri in ["turn:127.0.0.1:\(coturn.port)?transport=udp", "turn:[::1]:\(coturn.port)?transport=udp"] {
            let clean = try audit(coturn, uri, secretFile: secretFile)
            #expect(clean.status == 0 && clean.findings.isEmpty, "\(uri): \(clean.text)")
        }
    }

    @Test("A deny range that starts at :: refuses every IPv4 peer in coturn: the public peer's refusal is a finding")
    func tooWideDeny() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let secret = try TurnSecret.generate().withExposedBytes { String(decoding: $0, as: UTF8.self) }
        let secretFile = try directory.write("secret", secret + "\n")
        // Measured on 4.6.1: coturn reads a range from :: as "any" at its start and compares across families at
        // its end, so this line covers every IPv4 address. ::1-::ffff:ffff is the one that works.
        let coturn = try await server(Self.hardened + ["denied-peer-ip=::-::ffff:ffff"], secret: secret)
        defer { coturn.stop() }
        let audit = try audit(coturn, "turn:127.0.0.1:\(coturn.port)?transport=udp", secretFile: secretFile)
        #expect(audit.status == 1, "\(audit.text)")
        let refused = audit.found("8.8.8.8")
        #expect(refused?["check"] as? String == "public-peer" && refused?["severity"] as? String == "high")
        #expect((refused?["fix"] as? String)?.contains("::1-::ffff:ffff") == true, "\(audit.text)")
        // The IPv6 relay still reaches public IPv6 peers: only IPv4 ones are caught by the range.
        #expect(audit.found("2001:4860:4860::8888") == nil, "\(audit.text)")
    }

    @Test("An IPv6 listener with IPv4 relays only: probe falls back to the IPv4 relay clients get, and passes")
    func ipv6ListenerIPv4Relays() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let secret = try TurnSecret.generate().withExposedBytes { String(decoding: $0, as: UTF8.self) }
        let secretFile = try directory.write("secret", secret + "\n")
        var options = CoturnServer.Options()
        options.extraLines = ["listening-ip=::1"]
        let coturn = try await Self.accepting(CoturnServer(secrets: [secret], options: options), secret)
        defer { coturn.stop() }
        let probe = try TurnkeeperBinary.run(
            ["probe", "turn:[::1]:\(coturn.port)?transport=udp", "--secret-file", secretFile], timeout: .seconds(120))
        #expect(probe.status == 0, "\(probe)\n\(coturn.log.suffix(3000))")
        #expect(probe.stdout.contains("no IPv6 relay, 440"), "\(probe)")
        #expect(probe.stdout.contains("skip  otherFamily"), "\(probe)")
        #expect(probe.stdout.contains("No IPv6 relay (440): peers with only IPv6 addresses"), "\(probe)")
        #expect(!probe.stdout.contains("\\x00"), "\(probe)")
    }
}
