import Foundation
import Glibc
import TestSupport
import Testing
import TurnkeeperCredentials
import TurnkeeperProbe

/// `turnkeeper probe` against real coturn processes, healthy and misconfigured, and hostile servers.
@Suite("turnkeeper probe", .mayBlock, .tags(.live))
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
            // The other family is asked once per host, on its UDP URI: the TCP one says so.
            let failed = target.steps.filter {
                $0.status != .pass && !($0.step == .otherFamily && target.transport == "tcp")
            }
            if target.transport == "tcp" {
                #expect(target.steps.last?.detail.contains("asked on this host's UDP URI") == true, "\(target)")
            }
            #expect(failed.isEmpty, "\(target.uri) \(target.address): \(failed)")
            if target.uri.hasPrefix("turn") {
                #expect(
                    target.steps.map(\.step) == [
                        .binding, .allocation, .permission, .relaySendData, .channel, .relayChannelData, .release,
                        .otherFamily,
                    ])
                // Relays of both families: each URI's call used its own, and the other was granted too.
                let other = target.steps.first { $0.step == .otherFamily }
                #expect(other?.facts["family"] == (target.address.hasPrefix("[") ? "IPv4" : "IPv6"), "\(target)")
                for relayStep in target.steps
                where relayStep.step == .relayChannelData || relayStep.step == .relaySendData {
                    #expect(relayStep.facts["sent"] == "10")
                    #expect(relayStep.facts["received"] == "10")
                }
            }
        }
        #expect(report.targets.contains { $0.address.hasPrefix("[::1]") && $0.transport == "udp" })
        #expect(report.targets.contains { $0.transport == "tls" })
        // RFC 5780 against a coturn with one address per family (OTHER-ADDRESS: its own IP, the next port):
        // only port dependence can be told, and loopback is never called public.
        let nat = try #require(report.nat)
        #expect(!nat.behindNAT && nat.mapping == nil && nat.filtering == nil, "\(nat)")
        #expect(nat.undetermined?.contains("has one IP address") == true, "\(nat)")
        #expect(nat.summary.contains("loopback") && !nat.summary.contains("is public"), "\(nat.summary)")
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
        #expect(step(report, uri, .allocation)?.failure?.rawValue == "credentials-rejected")
        #expect(report.diagnoses.map(\.code.rawValue) == ["credentials-rejected"])
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
        #expect(report.diagnoses.map(\.code.rawValue) == ["credentials-expired"])
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
        #expect(report.diagnoses.map(\.code.rawValue) == ["credentials-expiry-too-late"])
    }

    @Test("Nothing listening (a stopped coturn's port): TCP refused, UDP's ICMP \"port unreachable\" heard at once")
    func stopped() throws {
        defer { directory.remove() }
        // Held, not just freed: no concurrent test's server can take it before the probe arrives.
        let closed = try RefusingPort()
        defer { closed.close() }
        let port = closed.port
        let tcp = "turn:127.0.0.1:\(port)?transport=tcp"
        let udp = "turn:127.0.0.1:\(port)?transport=udp"
        // A timeout far beyond the test: "refused" can only come from the kernel's ICMP, never from waiting.
        let (output, report) = try probe([tcp, udp, "--secret-file", secretFile, "--timeout", "2m"])
        #expect(output.status == 1)
        #expect(step(report, tcp, .binding)?.failure?.rawValue == "refused")
        #expect(step(report, udp, .binding)?.failure?.rawValue == "refused")
        #expect(report.diagnoses.map(\.code.rawValue) == ["not-listening", "not-listening"])
        let words = report.diagnoses.map(\.summary)
        #expect(
            words.contains { $0.hasPrefix("Nothing listens on UDP") && $0.contains("port unreachable") }, "\(words)")
        #expect(words.contains { $0.hasPrefix("Nothing accepts TCP connections") }, "\(words)")
    }

    @Test("A server that drops everything silently times out within the deadline")
    func silentDrop() throws {
        defer { directory.remove() }
        let silent = try HostileServer(.silent)
        defer { silent.stop() }
        let uri = "turn:127.0.0.1:\(silent.port)?transport=udp"
        let (output, report) = try probe([uri, "--secret-file", secretFile, "--timeout", "1s"])
        #expect(output.status == 1)
        #expect(step(report, uri, .binding)?.failure?.rawValue == "timeout")
        #expect(report.diagnoses.map(\.code.rawValue) == ["unreachable"])
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
        #expect(step(report, uri, .permission)?.failure?.rawValue == "error-403")
        #expect(report.diagnoses.map(\.code.rawValue) == ["peer-denied"])
        #expect(report.diagnoses.first?.fix.contains("allowed-peer-ip") == true)
    }

    @Test("UDP not served while TCP works: said as nothing listening; UDP dropped: blocked, with the UDP port")
    func udpBlocked() throws {
        defer { directory.remove() }
        var options = CoturnServer.Options()
        options.udp = false
        let server = try CoturnServer(secrets: [secret], options: options)
        defer { server.stop() }
        let udp = "turn:127.0.0.1:\(server.port)?transport=udp"
        let tcp = "turn:127.0.0.1:\(server.port)?transport=tcp"
        // coturn with no-udp: the kernel answers "port unreachable".
        let (unserved, unservedReport) = try probe([udp, tcp, "--secret-file", secretFile, "--timeout", "2m"])
        #expect(unserved.status == 1)
        #expect(
            unservedReport.targets.first { $0.uri == tcp }?.passed == true,
            "\(unserved.stdout)\ncoturn's log:\n\(server.log.suffix(4000))")
        #expect(step(unservedReport, udp, .binding)?.failure?.rawValue == "refused")
        #expect(unservedReport.diagnoses.map(\.code.rawValue) == ["not-listening"])
        // A socket that reads nothing and answers nothing on that UDP port: what a firewall's drop looks like.
        let drop = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(drop) }
        var address = LoopbackUDP.loopback(server.port)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(drop, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        try #require(bound == 0, "binding UDP 127.0.0.1:\(server.port): errno \(errno)")
        let (output, report) = try probe([udp, tcp, "--secret-file", secretFile, "--timeout", "1s"])
        #expect(output.status == 1)
        #expect(report.targets.first { $0.uri == tcp }?.passed == true)
        #expect(step(report, udp, .binding)?.failure?.rawValue == "timeout")
        #expect(report.diagnoses.map(\.code.rawValue) == ["udp-blocked"])
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
        #expect(step(report, uri, .binding)?.failure?.rawValue == "tls")
        let diagnosis = try #require(report.diagnoses.first)
        if kind == "expired" {
            #expect(diagnosis.code.rawValue == "tls-expired")
            #expect(diagnosis.summary.contains("expired on"))
        } else {
            #expect(diagnosis.code.rawValue == "tls-name-mismatch")
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
            #expect(
                ["timeout", "protocol-violation", "malformed-response", "closed"].contains(
                    binding.failure?.rawValue ?? ""))
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

    @Test(
        "Unbracketed IPv6, over-long host names and over-long user IDs are usage errors naming the fix or limit",
        arguments: [
            (["turn:::1"], "turn:[::1]:3478"), (["turn:::1:3478"], "turn:[::1]:3478"),
            (["turn:\(String(repeating: "a.", count: 127))org"], "DNS allows at most 253"),
            (["turn:\(String(repeating: "a", count: 64)).example.org"], "DNS allows at most 63"),
            (["stun:127.0.0.1", "--user", "@\(String(repeating: "u", count: 500)):b"], "at most 501 bytes"),
            (["stun:127.0.0.1", "--user", "@a:union.select"], "\"union\" and \"select\""),
        ]
    )
    func limits(arguments: [String], expected: String) throws {
        defer { directory.remove() }
        let output = try TurnkeeperBinary.run(["probe"] + arguments + ["--secret-file", secretFile])
        #expect(output.status == 2, "\(output)")
        #expect(output.stdout.isEmpty)
        #expect(output.stderr.contains(expected), "\(output.stderr)")
    }

    @Test("call: --name and --peer name files and TURN users, so only short plain names pass (exit 2)")
    func callNames() throws {
        defer { directory.remove() }
        for (name, peer) in [("../../etc/x", "bob"), ("alice", String(repeating: "b", count: 65)), ("a b", "bob")] {
            let output = try TurnkeeperBinary.run([
                "call", "--name", name, "--peer", peer, "--rendezvous", directory.path, "--secret-file", secretFile,
                "--uri", "turn:[::1]:3478",
            ])
            #expect(output.status == 2, "\(output)")
            #expect(output.stderr.contains("must be 1 to 64 letters, digits"), "\(output.stderr)")
        }
        let ipv6 = try TurnkeeperBinary.run([
            "call", "--name", "alice", "--peer", "bob", "--rendezvous", directory.path, "--secret-file", secretFile,
            "--uri", "turn:::1:3478", "--timeout", "1s",
        ])
        #expect(ipv6.status == 2, "\(ipv6)")
        #expect(ipv6.stderr.contains("turn:[::1]:3478"))
    }

    @Test("call: Ctrl-C while waiting for the peer ends the call at once with its report, not at --timeout")
    func callInterrupted() async throws {
        defer { directory.remove() }
        let server = try CoturnServer(secrets: [secret])
        defer { server.stop() }
        let rendezvous = directory.file("rendezvous")
        try FileManager.default.createDirectory(atPath: rendezvous, withIntermediateDirectories: false)
        let output = directory.file("call.out")
        let call = try ChildProcess(
            TurnkeeperBinary.path,
            [
                "call", "--direct", "--uri", "stun:127.0.0.1:\(server.port)", "--name", "alice", "--peer", "bob",
                "--rendezvous", rendezvous, "--timeout", "10m", "--json",
            ], stdoutPath: output, stderrPath: output)
        defer { call.terminate() }
        // Waiting for bob once its own card is there.
        let deadline = ContinuousClock.now + .seconds(120)
        while !FileManager.default.fileExists(atPath: rendezvous + "/alice.json") && call.isRunning
            && ContinuousClock.now < deadline
        {
            try await Task.sleep(for: .milliseconds(50))
        }
        call.signal(SIGINT)
        let status = call.wait(timeout: .seconds(120))
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        #expect(status == 1, "\(text)")
        #expect(text.contains("stopped (Ctrl-C or SIGTERM) while waiting for bob"), "\(text)")
    }

    /// No byte a terminal would obey: C0 controls other than the line feeds that end lines, DEL, C1
    /// controls, bidi and zero-width format characters, line and paragraph separators.
    private func inert(_ text: String) -> Bool {
        text.unicodeScalars.allSatisfy { scalar in
            if scalar == "\n" { return true }
            switch scalar.properties.generalCategory {
            case .control, .format, .lineSeparator, .paragraphSeparator: return false
            default: return true
            }
        }
    }

    @Test("A server's hostile reason phrase reaches neither the terminal nor JSON raw, and forges no line")
    func hostileText() throws {
        defer { directory.remove() }
        let server = try HostileServer(.hostileText)
        defer { server.stop() }
        let uris = ["turn:127.0.0.1:\(server.port)?transport=udp", "turn:127.0.0.1:\(server.port)?transport=tcp"]
        let arguments = ["probe"] + uris + ["--secret-file", secretFile, "--timeout", "2s"]
        let human = try TurnkeeperBinary.run(arguments)
        #expect(human.status == 1, "\(human)")
        #expect(inert(human.stdout) && inert(human.stderr), "\(human)")
        // The forged text is there, shown for what it is, inside the binding's FAIL line.
        #expect(human.stdout.contains("error response 500 \\r\\x1b[2K\\x1b[32mPASS\\x1b[0m\\nAll 1 target(s)"))
        let lines = human.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(!lines.contains { $0.hasPrefix("All ") || $0.hasPrefix("PASS") || $0.contains("\u{1B}") })
        #expect(lines.last { !$0.isEmpty } == "2 of 2 target(s) failed.", "\(human.stdout)")

        let (json, report) = try probe(uris + ["--secret-file", secretFile, "--timeout", "2s"])
        #expect(json.status == 1)
        #expect(inert(json.stdout))
        for target in report.targets {
            for step in target.steps {
                #expect(inert(step.detail) && !step.detail.contains("\n"), "\(step.detail)")
                #expect(step.detail.count < 400)
            }
        }
        for diagnosis in report.diagnoses { #expect(inert(diagnosis.summary) && !diagnosis.summary.contains("\n")) }
    }

    @Test(
        "An allocation granted without a valid MESSAGE-INTEGRITY fails with its own diagnosis: maybe forged",
        arguments: [
            (HostileServer.Behaviour.unsignedAllocation, "response-integrity-missing"),
            (.forgedAllocation, "response-integrity-invalid"),
        ]
    )
    func unauthenticatedAllocation(behaviour: HostileServer.Behaviour, code: String) throws {
        defer { directory.remove() }
        let server = try HostileServer(behaviour)
        defer { server.stop() }
        let passwordFile = try directory.write("password", HostileServer.password)
        let username = "\(Int(Date().timeIntervalSince1970) + 600):@a:b"
        let uri = "turn:127.0.0.1:\(server.port)?transport=udp"
        let credentials = ["--username", username, "--password-file", passwordFile]
        let (output, report) = try probe([uri] + credentials)
        #expect(output.status == 1, "\(output)")
        #expect(step(report, uri, .allocation)?.failure?.rawValue == code)
        #expect(
            step(report, uri, .allocation)?.facts["answerIntegrity"]
                == (code.hasSuffix("missing") ? "missing" : "invalid"))
        #expect(step(report, uri, .permission)?.status == .skip)
        #expect(report.diagnoses.map(\.code.rawValue) == [code])
        let human = try TurnkeeperBinary.run(["probe", uri, "--timeout", "10s"] + credentials)
        #expect(human.status == 1)
        #expect(human.stdout.contains("could not be authenticated"))
        #expect(human.stdout.contains("forged"))
        #expect(!human.stdout.contains("passed"))
    }

    @Test("CreatePermission granted unsigned after a signed allocation fails the permission step")
    func unauthenticatedPermission() throws {
        defer { directory.remove() }
        let server = try HostileServer(.unsignedAfterAllocation)
        defer { server.stop() }
        let passwordFile = try directory.write("password", HostileServer.password)
        let uri = "turn:127.0.0.1:\(server.port)?transport=tcp"
        let (output, report) = try probe([
            uri, "--username", "\(Int(Date().timeIntervalSince1970) + 600):@a:b", "--password-file", passwordFile,
        ])
        #expect(output.status == 1, "\(output)")
        #expect(step(report, uri, .allocation)?.status == .pass)
        #expect(step(report, uri, .permission)?.failure?.rawValue == "response-integrity-missing")
        #expect(report.diagnoses.map(\.code.rawValue) == ["response-integrity-missing"])
    }

    @Test("A wrong secret is credentials-rejected whether the server answers 401 (coturn) or 400 (pion)")
    func wrongSecretEveryServer() throws {
        defer { directory.remove() }
        let pion = try HostileServer(.badRequestToCredentials)
        defer { pion.stop() }
        let coturn = try CoturnServer(secrets: [
            try TurnSecret.generate().withExposedBytes { String(decoding: $0, as: UTF8.self) }
        ])
        defer { coturn.stop() }
        let pionURI = "turn:127.0.0.1:\(pion.port)?transport=udp"
        let coturnURI = "turn:127.0.0.1:\(coturn.port)?transport=udp"
        let (output, report) = try probe([pionURI, coturnURI, "--secret-file", secretFile])
        #expect(output.status == 1, "\(output)")
        #expect(step(report, pionURI, .allocation)?.failure?.rawValue == "credentials-rejected")
        #expect(step(report, coturnURI, .allocation)?.failure?.rawValue == "credentials-rejected")
        #expect(step(report, pionURI, .allocation)?.facts["errorCode"] == "400")
        #expect(step(report, coturnURI, .allocation)?.facts["errorCode"] == "401")
        #expect(report.diagnoses.map(\.code.rawValue) == ["credentials-rejected"], "\(report.diagnoses)")
    }

    @Test("A username coturn refuses (400, unsigned) is named as such, not blamed on the secret")
    func usernameRefused() throws {
        defer { directory.remove() }
        let server = try CoturnServer(secrets: [secret])
        defer { server.stop() }
        let credential = try CredentialMinter(secret: TurnSecret(validating: secret))
            .credential(user: "@union.select:b", expiry: Int64(Date().timeIntervalSince1970) + 600)
        let passwordFile = try directory.write("password", credential.password)
        let uri = "turn:127.0.0.1:\(server.port)?transport=udp"
        let (output, report) = try probe([uri, "--username", credential.username, "--password-file", passwordFile])
        #expect(output.status == 1, "\(output)")
        #expect(output.stderr.contains("warning: --username holds both \"union\" and \"select\""))
        #expect(step(report, uri, .allocation)?.failure?.rawValue == "credentials-rejected")
        #expect(step(report, uri, .allocation)?.facts["errorCode"] == "400")
        #expect(report.diagnoses.map(\.code.rawValue) == ["username-refused"])
    }

    @Test("Without credentials only Binding runs: exit 0, and the summary says relaying was not tested")
    func bindingOnly() throws {
        defer { directory.remove() }
        let server = try CoturnServer(secrets: [secret])
        defer { server.stop() }
        let uri = "turn:127.0.0.1:\(server.port)?transport=udp"
        let human = try TurnkeeperBinary.run(["probe", uri, "--timeout", "10s"])
        #expect(human.status == 0, "\(human)")
        #expect(!human.stdout.contains("calls through this server work"))
        #expect(human.stdout.contains("Binding passed on all 1 target(s), but relaying was NOT tested"))
        #expect(human.stdout.contains("--secret-file, --synapse-config, or --homeserver"))
        #expect(human.stdout.contains("not run: no credentials"))
        #expect(!human.stdout.contains("an earlier step failed"))
        let (json, report) = try probe([uri])
        #expect(json.status == 0)
        #expect(report.passed && !report.relayTested)
        #expect(step(report, uri, .allocation)?.status == .skip)
        let (_, full) = try probe([uri, "--secret-file", secretFile])
        #expect(
            full.passed && full.relayTested,
            "\(full.targets.flatMap(\.steps).filter { $0.status == .fail }.map { "\($0.step): \($0.detail)" })")
    }

    @Test(
        "help at 80 columns keeps every hand-aligned line of the discussion whole",
        arguments: [
            ["probe"], ["call"], ["credentials", "mint"], ["credentials", "verify"], ["rotate"], ["provision"],
            ["init"], ["calltest"], ["audit"], ["load"],
        ]
    )
    func helpFits(command: [String]) throws {
        defer { directory.remove() }
        func discussion(columns: Int) throws -> [Substring] {
            let output = try TurnkeeperBinary.run(["help"] + command, environment: ["COLUMNS": String(columns)])
            #expect(output.status == 0)
            return output.stdout.split(separator: "\n").prefix { !$0.hasPrefix("USAGE:") }
        }
        // Unwrapped, the indented lines are as written; at 80 columns each must still be a line of its own.
        let aligned = try discussion(columns: 1000).filter { $0.hasPrefix("  ") }
        let narrow = try discussion(columns: 80)
        #expect(!aligned.isEmpty)
        for line in aligned { #expect(narrow.contains(line), "rewrapped: \(line)") }
        #expect(narrow.allSatisfy { $0.count <= 80 })
        // The usage line too: argument-parser does not wrap it.
        let usage = try TurnkeeperBinary.run(["help"] + command, environment: ["COLUMNS": "80"]).stdout
            .split(separator: "\n").drop { !$0.hasPrefix("USAGE:") }.prefix { !$0.isEmpty }
        #expect(!usage.isEmpty && usage.allSatisfy { $0.count <= 80 }, "\(usage)")
    }
}

/// Upstream coturn 4.17.1's answers, as recorded against a build of the tag (docs/upstream-coturn.md), replayed
/// by ``HostileServer/Behaviour/upstreamRecorded``: CI has Debian's 4.6.1 only.
@Suite("Upstream coturn 4.17.1, recorded", .mayBlock)
struct UpstreamCoturnTests {
    let directory: TemporaryDirectory
    init() throws { directory = try TemporaryDirectory() }

    func credentials() throws -> [String] {
        let passwordFile = try directory.write("password", HostileServer.password)
        return ["--username", "\(Int(Date().timeIntervalSince1970) + 600):@a:b", "--password-file", passwordFile]
    }

    @Test("probe: a stateless nonce stale once, no reason phrases, 403 to a loopback relay, 440 to IPv6")
    func probe() throws {
        defer { directory.remove() }
        let server = try HostileServer(.upstreamRecorded)
        defer { server.stop() }
        let uri = "turn:127.0.0.1:\(server.port)?transport=udp"
        let output = try TurnkeeperBinary.run(["probe", uri, "--timeout", "10s"] + credentials())
        #expect(output.status == 1, "\(output)")
        // The 438 was answered with the new nonce, and the allocation went through.
        let staleNonceSent = server.staleNonceSent.load(ordering: .relaxed)
        #expect(staleNonceSent)
        #expect(output.stdout.contains("pass  allocation"), "\(output)")
        // No reason phrase: the RFC's, never an empty or padded one.
        #expect(output.stdout.contains("error response 403 Forbidden"), "\(output)")
        #expect(!output.stdout.contains("\\x00"), "\(output)")
        // A loopback relay: allowed-peer-ip would not help, and the advice says so.
        #expect(output.stdout.contains("allow-loopback-peers") && !output.stdout.contains("allowed-peer-ip=<"))
        #expect(output.stdout.contains("skip  otherFamily") && output.stdout.contains("no IPv6 relay (440)"))
        // The steps are listed in their order, run or not.
        let steps = output.stdout.split(separator: "\n").compactMap { line in
            line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.map(String.init)
        }.filter { StepReport.Name(rawValue: $0) != nil }
        #expect(
            steps == [
                "binding", "allocation", "permission", "relaySendData", "channel", "relayChannelData", "release",
                "otherFamily",
            ], "\(output)")
    }

    @Test("audit: no SOFTWARE is an unknown version the active checks decide; 403 everywhere; 440 is a pass")
    func audit() throws {
        defer { directory.remove() }
        let server = try HostileServer(.upstreamRecorded)
        defer { server.stop() }
        let uri = "turn:127.0.0.1:\(server.port)?transport=udp"
        let output = try TurnkeeperBinary.run(["audit", uri, "--json", "--timeout", "10s"] + credentials())
        let report = (try? JSONSerialization.jsonObject(with: Data(output.stdout.utf8))) as? [String: Any] ?? [:]
        let targets = report["targets"] as? [[String: Any]] ?? []
        let checks = (targets.first?["checks"] as? [[String: Any]]) ?? []
        func result(_ check: String) -> [String] {
            checks.filter { $0["check"] as? String == check }.compactMap { $0["result"] as? String }
        }
        #expect(!checks.isEmpty, "\(output)")
        #expect(result("coturn-version") == ["not-tested"], "\(output)")
        #expect(result("software-disclosed") == ["pass"] && result("no-auth") == ["pass"], "\(output)")
        #expect(result("ipv6-peers") == ["pass"] && result("public-peer") == ["pass"], "\(output)")
        for check in ["peer-loopback", "peer-metadata", "peer-this-network", "peer-private", "peer-multicast"] {
            #expect(!result(check).isEmpty && result(check).allSatisfy { $0 == "pass" }, "\(check): \(output)")
        }
        let findings = (report["findings"] as? [[String: Any]] ?? []).compactMap { $0["check"] as? String }
        // The replay has no quota, as 4.17.1 has none unless told: that is the one finding.
        #expect(findings == ["quota-missing"], "\(output)")
    }
}
