import Foundation
import TestSupport
import Testing
import TurnkeeperCredentials
import TurnkeeperProbe

/// `turnkeeper probe` against real coturn processes, healthy and misconfigured, and hostile servers.
@Suite("turnkeeper probe")
struct ProbeCommandTests {
    let directory: TemporaryDirectory
    let secret: String
    let secretFile: String

    init() throws {
        directory = try TemporaryDirectory()
        secret = try TurnSecret.generate().withExposedBytes { String(decoding: $0, as: UTF8.self) }
        secretFile = try directory.write("secret", secret + "\n")
    }

    private func probe(_ arguments: [String]) throws -> (ProcessOutput, ProbeReport) {
        // Tests that expect success get room for a loaded machine; tests of timeouts set their own.
        let timeout = arguments.contains("--timeout") ? [] : ["--timeout", "10s"]
        let output = try TurnkeeperBinary.run(["probe", "--json"] + arguments + timeout)
        let report = try JSONDecoder().decode(ProbeReport.self, from: Data(output.stdout.utf8))
        return (output, report)
    }

    private func step(_ report: ProbeReport, _ uri: String, _ name: StepReport.Name) -> StepReport? {
        report.targets.first { $0.uri == uri }?.steps.first { $0.step == name }
    }

    @Test("A healthy coturn passes every step over UDP, TCP, TLS, IPv6 and STUN")
    func healthy() throws {
        defer { directory.remove() }
        let certificates = try TestCertificates(in: directory)
        var options = CoturnServer.Options()
        options.ipv6 = true
        options.tls = certificates.good
        let server = try CoturnServer(secrets: [secret], options: options)
        defer { server.stop() }
        let port = server.port
        let uris = [
            "turn:127.0.0.1:\(port)?transport=udp", "turn:127.0.0.1:\(port)?transport=tcp",
            "turns:localhost:\(server.tlsPort!)?transport=tcp", "turn:[::1]:\(port)?transport=udp",
            "stun:127.0.0.1:\(port)",
        ]
        let (output, report) = try probe(uris + ["--secret-file", secretFile, "--ca-file", certificates.caFile])
        #expect(output.status == 0, "\(output)\n\(server.log.suffix(2000))")
        #expect(report.passed)
        #expect(report.diagnoses.isEmpty)
        for target in report.targets {
            let failed = target.steps.filter { $0.status != .pass }
            #expect(failed.isEmpty, "\(target.uri) \(target.address): \(failed)")
            if target.uri.hasPrefix("turn") {
                #expect(
                    target.steps.map(\.step) == [
                        .binding, .allocation, .permission, .relaySendData, .channel, .relayChannelData, .release,
                    ])
                for relayStep in target.steps
                where relayStep.step == .relayChannelData || relayStep.step == .relaySendData {
                    #expect(relayStep.facts["sent"] == "10")
                    #expect(relayStep.facts["received"] == "10")
                }
            }
        }
        #expect(report.targets.contains { $0.address.hasPrefix("[::1]") && $0.transport == "udp" })
        #expect(report.targets.contains { $0.transport == "tls" })
        let relayed = step(report, uris[3], .allocation)?.facts["relayed"]
        #expect(relayed?.hasPrefix("[::1]:") == true)
        #expect(!output.stdout.contains(secret) && !output.stderr.contains(secret))
    }

    @Test("The binding's reflexive address is the one coturn's turnutils_stunclient reports")
    func reflexiveMatchesStunclient() throws {
        defer { directory.remove() }
        let server = try CoturnServer(secrets: [secret])
        defer { server.stop() }
        let uri = "stun:127.0.0.1:\(server.port)"
        let (_, report) = try probe([uri])
        let reflexive = try #require(step(report, uri, .binding)?.facts["reflexive"])
        let stunclient = try ProcessRunner.which("turnutils_stunclient", package: "coturn")
        let theirs = try ProcessRunner.run(stunclient, ["-p", String(server.port), "127.0.0.1"], timeout: .seconds(10))
        // Each client has its own source port; the reflexive IP is what both must agree on.
        let line = try #require(theirs.stdout.split(separator: "\n").first { $0.contains("UDP reflexive addr") })
        let theirAddress = try #require(line.split(separator: " ").last)
        #expect(theirAddress.split(separator: ":").first == reflexive.split(separator: ":").first)
    }

    @Test("A wrong secret is named as a secret mismatch between Synapse and coturn")
    func wrongSecret() throws {
        defer { directory.remove() }
        let server = try CoturnServer(secrets: [
            try TurnSecret.generate().withExposedBytes { String(decoding: $0, as: UTF8.self) }
        ])
        defer { server.stop() }
        let uri = "turn:127.0.0.1:\(server.port)?transport=udp"
        let (output, report) = try probe([uri, "--secret-file", secretFile])
        #expect(output.status == 1)
        #expect(step(report, uri, .allocation)?.failure == "credentials-rejected")
        #expect(report.diagnoses.map(\.code) == ["credentials-rejected"])
        #expect(report.diagnoses.first?.fix.contains("static-auth-secret") == true)
    }

    @Test("Expired credentials are named as expired, with the clock advice")
    func expired() throws {
        defer { directory.remove() }
        let server = try CoturnServer(secrets: [secret])
        defer { server.stop() }
        let credential = try CredentialMinter(secret: TurnSecret(validating: secret))
            .credential(user: "@a:b", expiry: Int64(Date().timeIntervalSince1970) - 60)
        let passwordFile = try directory.write("password", credential.password)
        let uri = "turn:127.0.0.1:\(server.port)?transport=tcp"
        let (output, report) = try probe([uri, "--username", credential.username, "--password-file", passwordFile])
        #expect(output.status == 1)
        #expect(report.diagnoses.map(\.code) == ["credentials-expired"])
        #expect(report.diagnoses.first?.fix.contains("NTP") == true)
    }

    @Test("coturn refuses expiries past 2038 (signed 32-bit), and the probe says so")
    func expiryPast2038() throws {
        defer { directory.remove() }
        let server = try CoturnServer(secrets: [secret])
        defer { server.stop() }
        let minter = try CredentialMinter(secret: TurnSecret(validating: secret))
        let uri = "turn:127.0.0.1:\(server.port)?transport=udp"
        // The last second coturn accepts, and the first it refuses.
        let last = minter.credential(user: "@a:b", expiry: 2_147_483_647)
        let first = minter.credential(user: "@a:b", expiry: 2_147_483_648)
        let lastPassword = try directory.write("last", last.password)
        let firstPassword = try directory.write("first", first.password)
        let (accepted, _) = try probe([uri, "--username", last.username, "--password-file", lastPassword])
        #expect(accepted.status == 0, "\(accepted)")
        let (refused, report) = try probe([uri, "--username", first.username, "--password-file", firstPassword])
        #expect(refused.status == 1)
        #expect(report.diagnoses.map(\.code) == ["credentials-expiry-too-late"])
    }

    @Test("A stopped coturn: TCP is refused, UDP times out, each named")
    func stopped() throws {
        defer { directory.remove() }
        let server = try CoturnServer(secrets: [secret])
        let port = server.port
        server.stop()
        let tcp = "turn:127.0.0.1:\(port)?transport=tcp"
        let udp = "turn:127.0.0.1:\(port)?transport=udp"
        let (output, report) = try probe([tcp, udp, "--secret-file", secretFile, "--timeout", "1s"])
        #expect(output.status == 1)
        #expect(step(report, tcp, .binding)?.failure == "refused")
        #expect(step(report, udp, .binding)?.failure == "timeout")
        #expect(Set(report.diagnoses.map(\.code)) == ["not-listening", "unreachable"])
    }

    @Test("A server that drops everything silently times out within the deadline")
    func silentDrop() throws {
        defer { directory.remove() }
        let silent = try HostileServer(.silent)
        defer { silent.stop() }
        let uri = "turn:127.0.0.1:\(silent.port)?transport=udp"
        let (output, report) = try probe([uri, "--secret-file", secretFile, "--timeout", "1s"])
        #expect(output.status == 1)
        #expect(step(report, uri, .binding)?.failure == "timeout")
        #expect(report.diagnoses.map(\.code) == ["unreachable"])
    }

    @Test("coturn refusing loopback peers gives 403 at permission and the allowed-peer-ip advice")
    func peerDenied() throws {
        defer { directory.remove() }
        var options = CoturnServer.Options()
        options.allowLoopbackPeers = false
        let server = try CoturnServer(secrets: [secret], options: options)
        defer { server.stop() }
        let uri = "turn:127.0.0.1:\(server.port)?transport=udp"
        let (output, report) = try probe([uri, "--secret-file", secretFile])
        #expect(output.status == 1)
        #expect(step(report, uri, .permission)?.failure == "error-403")
        #expect(report.diagnoses.map(\.code) == ["peer-denied"])
        #expect(report.diagnoses.first?.fix.contains("allowed-peer-ip") == true)
    }

    @Test("UDP blocked while TCP works: UDP fails, TCP passes, and the advice names the UDP port")
    func udpBlocked() throws {
        defer { directory.remove() }
        var options = CoturnServer.Options()
        options.udp = false
        let server = try CoturnServer(secrets: [secret], options: options)
        defer { server.stop() }
        let udp = "turn:127.0.0.1:\(server.port)?transport=udp"
        let tcp = "turn:127.0.0.1:\(server.port)?transport=tcp"
        let (output, report) = try probe([udp, tcp, "--secret-file", secretFile, "--timeout", "1s"])
        #expect(output.status == 1)
        #expect(report.targets.first { $0.uri == tcp }?.passed == true)
        #expect(step(report, udp, .binding)?.failure == "timeout")
        #expect(report.diagnoses.map(\.code) == ["udp-blocked"])
        #expect(report.diagnoses.first?.fix.contains("udp dport \(server.port)") == true)
    }

    @Test(
        "Bad certificates are named: expired with its date, wrong name with the names it has",
        arguments: ["expired", "wrong-name"]
    )
    func badCertificates(kind: String) throws {
        defer { directory.remove() }
        let certificates = try TestCertificates(in: directory)
        var options = CoturnServer.Options()
        options.tls = kind == "expired" ? certificates.expired : certificates.wrongName
        let server = try CoturnServer(secrets: [secret], options: options)
        defer { server.stop() }
        let uri = "turns:127.0.0.1:\(server.tlsPort!)?transport=tcp"
        let (output, report) = try probe([uri, "--secret-file", secretFile, "--ca-file", certificates.caFile])
        #expect(output.status == 1)
        #expect(step(report, uri, .binding)?.failure == "tls")
        let diagnosis = try #require(report.diagnoses.first)
        if kind == "expired" {
            #expect(diagnosis.code == "tls-expired")
            #expect(diagnosis.summary.contains("expired on"))
        } else {
            #expect(diagnosis.code == "tls-name-mismatch")
            #expect(diagnosis.summary.contains("turn.elsewhere.test"))
        }
    }

    @Test(
        "A hostile server can neither crash nor hang the probe",
        arguments: [.garbage, .truncated, .wrongTransaction, .hugeLength, .endless, .silent]
            as [HostileServer.Behaviour]
    )
    func hostile(behaviour: HostileServer.Behaviour) throws {
        defer { directory.remove() }
        let server = try HostileServer(behaviour)
        defer { server.stop() }
        let udp = "turn:127.0.0.1:\(server.port)?transport=udp"
        let tcp = "turn:127.0.0.1:\(server.port)?transport=tcp"
        let started = ContinuousClock.now
        let (output, report) = try probe([udp, tcp, "--secret-file", secretFile, "--timeout", "1s"])
        // Deadlines of 1 s a step; anything near the runner's 30 s guard would be a hang.
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(output.status == 1, "\(output)")
        for uri in [udp, tcp] {
            let binding = try #require(step(report, uri, .binding))
            #expect(binding.status == .fail)
            #expect(["timeout", "protocol-violation", "malformed-response", "closed"].contains(binding.failure ?? ""))
        }
    }

    @Test("Malformed URIs and conflicting credentials are usage errors (exit 2)")
    func usage() throws {
        defer { directory.remove() }
        for arguments in [
            ["http://example.org"], ["turn:"], ["turn:host:99999"], ["turns:host?transport=udp"],
            ["turn:host", "--secret-file", secretFile, "--username", "u"], ["turn:host", "--timeout", "soon"],
        ] {
            let output = try TurnkeeperBinary.run(["probe"] + arguments)
            #expect(output.status == 2, "\(arguments): \(output)")
            #expect(!output.stderr.isEmpty)
        }
    }
}
