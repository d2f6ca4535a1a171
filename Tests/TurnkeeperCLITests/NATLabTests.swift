import Foundation
import Glibc
import Synchronization
import TestSupport
import Testing
import TurnkeeperCredentials

/// Calls behind real NATs (scripts/natlab.sh): alice behind an endpoint-independent NAT, bob behind a
/// symmetric one, Synapse and coturn on the lab's "public" network. Every namespace is removed after
/// each test, and checked to be gone.
@Suite("NAT lab", .mayBlock, .tags(.live))
struct NATLabTests {
    struct Call {
        let report: [String: Any]
        let status: Int32
        let output: String
        /// Still running when `whileRunning` finished: what happened there happened during the call.
        let outlivedInterlude: Bool
        var passed: Bool { report["passed"] as? Bool == true }
        var received: Int { report["received"] as? Int ?? -1 }
        var loss: Double { report["lossPercent"] as? Double ?? 100 }
        var reflexive: String { report["reflexive"] as? String ?? "" }
    }

    /// Both parties of a running call, seen from outside.
    struct Running: Sendable {
        let rendezvous: String
        let names: (String, String)

        private func card(_ name: String) -> [String: Any]? {
            guard let data = FileManager.default.contents(atPath: "\(rendezvous)/\(name).json") else { return nil }
            return try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        }

        /// How many of the other's packets each party has received, as its card said last (once a second).
        var received: (Int, Int) {
            (card(names.0)?["received"] as? Int ?? 0, card(names.1)?["received"] as? Int ?? 0)
        }

        /// Returns once both parties stream (their cards say "streaming"): media flows from then on.
        func streaming(timeout: Duration = .seconds(120)) async throws {
            let deadline = ContinuousClock.now + timeout
            while ContinuousClock.now < deadline {
                if [names.0, names.1].allSatisfy({ card($0)?["stage"] as? String == "streaming" }) { return }
                try await Task.sleep(for: .milliseconds(50))
            }
            throw TestFailure("the parties did not both stream in \(rendezvous) within \(timeout)")
        }

        /// Returns once each party has received `count` more of the other's packets than at `since`.
        func received(_ count: Int, moreThan since: (Int, Int), timeout: Duration = .seconds(120)) async throws {
            let deadline = ContinuousClock.now + timeout
            while ContinuousClock.now < deadline {
                let now = received
                if now.0 >= since.0 + count && now.1 >= since.1 + count { return }
                try await Task.sleep(for: .milliseconds(100))
            }
            throw TestFailure("the call stalled: \(received) packets received, \(since) before, \(count) more wanted")
        }
    }

    /// Both parties at once, each in its own namespace and process; returns (first, second). With
    /// `hangUp`, both are sent SIGINT once `whileRunning` is done, as hanging up: give a `duration` longer
    /// than the interlude can take, and the call lasts exactly as long as the interlude.
    static func call(
        _ lab: NATLab, _ first: (host: String, name: String, arguments: [String]),
        _ second: (host: String, name: String, arguments: [String]), duration: String = "5s",
        hangUp: Bool = false, whileRunning: (@Sendable (Running) async throws -> Void)? = nil
    ) async throws -> (Call, Call) {
        let rendezvous = lab.directory.file("rendezvous-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(atPath: rendezvous, withIntermediateDirectories: false)
        func start(_ side: (host: String, name: String, arguments: [String]), _ peer: String) throws -> (
            ChildProcess, String
        ) {
            let output = "call-\(side.name)-\(UUID().uuidString.prefix(6)).json"
            let process = try lab.start(
                side.host,
                [
                    TurnkeeperBinary.path, "call", "--name", side.name, "--peer", peer, "--rendezvous", rendezvous,
                    "--duration", duration, "--timeout", "30s", "--json",
                ] + side.arguments,
                output: output)
            return (process, lab.directory.file(output))
        }
        let a = try start(first, second.name)
        let b = try start(second, first.name)
        if let whileRunning {
            do {
                try await whileRunning(Running(rendezvous: rendezvous, names: (first.name, second.name)))
            } catch {
                a.0.signal(SIGINT)
                b.0.signal(SIGINT)
                throw error
            }
        }
        let running = (a.0.isRunning, b.0.isRunning)
        if hangUp {
            a.0.signal(SIGINT)
            b.0.signal(SIGINT)
        }
        func finish(_ side: (ChildProcess, String), _ outlived: Bool) throws -> Call {
            let status = side.0.wait(timeout: .seconds(120)) ?? -1
            let text = try String(contentsOfFile: side.1, encoding: .utf8)
            let json = text.firstIndex(of: "{").map { String(text[$0...]) } ?? ""
            let report = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any] ?? [:]
            return Call(report: report, status: status, output: text, outlivedInterlude: outlived)
        }
        return (try finish(a, running.0), try finish(b, running.1))
    }

    /// coturn on 203.0.113.10 (and .11), Synapse on 203.0.113.20 sharing its secret, alice and bob registered.
    struct PublicSetup: Sendable {
        let coturn: LabCoturn
        let synapse: SynapseServer
        let secret: TurnSecret
        let tokens: (alice: String, bob: String)

        /// - Parameter ipv6: coturn also listens and relays on 2001:db8:113::10, with these extra lines
        ///   (such as its default relay family), and Synapse hands out its IPv6 URI after the IPv4 ones.
        init(
            _ lab: NATLab, secretInCoturnConfig: Bool = true, supervised: Bool = false, lifetime: String = "1h",
            synapseConf: [String: String] = [:], coturnSecret: String? = nil, ipv6: [String]? = nil
        ) throws {
            secret = try TurnSecret.generate()
            let text = secret.withExposedBytes { String(decoding: $0, as: UTF8.self) }
            coturn = try LabCoturn(
                lab: lab, host: "turn",
                listen: ["203.0.113.10", "203.0.113.11"] + (ipv6 == nil ? [] : ["2001:db8:113::10"]),
                secrets: secretInCoturnConfig ? [coturnSecret ?? text] : [],
                extra: ipv6.map { ["relay-ip=2001:db8:113::10"] + $0 } ?? [])
            let uris =
                ["\"turn:203.0.113.10?transport=udp\"", "\"turn:203.0.113.10?transport=tcp\""]
                + (ipv6 == nil ? [] : ["\"turn:[2001:db8:113::10]?transport=udp\""])
            synapse = try SynapseServer(
                confFiles: [
                    "10-turn.yaml": """
                    turn_uris: [\(uris.joined(separator: ", "))]
                    turn_shared_secret: "\(text)"
                    turn_user_lifetime: \(lifetime)
                    """
                ].merging(synapseConf) { _, extra in extra },
                supervised: supervised, namespace: lab.namespace("hs"), address: "203.0.113.20")
            tokens = (
                try lab.directory.write("alice.token", try synapse.register("alice")),
                try lab.directory.write("bob.token", try synapse.register("bob"))
            )
        }

        func fromSynapse(_ token: String) -> [String] {
            ["--homeserver", "http://203.0.113.20:8008", "--access-token-file", token]
        }

        /// turnkeeper.yaml for rotating this setup from the Synapse host: coturn's SQLite userdb, Synapse
        /// restarted by its supervisor, a 1 s margin.
        func rotationConfig(_ lab: NATLab, daemon: TestConfiguration.Daemon? = nil) throws -> String {
            var synapse = TestConfiguration.Synapse(config: [self.synapse.homeserverYAML, self.synapse.confD])
            synapse.managedFile = self.synapse.confD + "/90-turnkeeper.yaml"
            synapse.restartCommand = self.synapse.restartCommand
            synapse.healthURL = "http://203.0.113.20:8008/health"
            synapse.homeserver = "http://203.0.113.20:8008"
            synapse.accessTokenFile = tokens.alice
            var coturn = TestConfiguration.Coturn(
                realm: "lab.turnkeeper.test", verifyURI: "turn:203.0.113.10?transport=udp")
            coturn.database = self.coturn.userDatabase
            var rotation = TestConfiguration.Rotation(stateDirectory: lab.directory.file("state"))
            rotation.margin = "1s"
            var configuration = TestConfiguration(synapse: synapse, coturn: coturn, rotation: rotation)
            configuration.daemon = daemon
            return try lab.directory.write("turnkeeper.yaml", try configuration.render())
        }

        func stop() {
            synapse.stop()
            coturn.stop()
        }
    }

    @Test("alice and bob, behind two NATs, call through coturn with Synapse's credentials; direct fails")
    func callThroughRelay() async throws {
        let lab = try NATLab()
        defer { #expect(lab.down().isEmpty, "namespaces left behind") }
        let setup = try PublicSetup(lab)
        defer { setup.stop() }

        let (alice, bob) = try await Self.call(
            lab, ("alice", "alice", setup.fromSynapse(setup.tokens.alice)),
            ("bob", "bob", setup.fromSynapse(setup.tokens.bob)))
        for (call, nat) in [(alice, "203.0.113.101"), (bob, "203.0.113.102")] {
            #expect(call.status == 0 && call.passed, "\(call.output)")
            #expect(call.loss < 1 && call.received >= 248, "\(call.output)")
            #expect(call.report["expected"] as? Int == 250)
            #expect(call.reflexive.hasPrefix(nat + ":"), "\(call.output)")
            #expect((call.report["relayed"] as? String)?.hasPrefix("203.0.113.10:") == true)
        }

        // The negative control: straight between them, hole punching through both NATs, nothing arrives.
        let stun = ["--direct", "--uri", "stun:203.0.113.10"]
        let (directAlice, directBob) = try await Self.call(
            lab, ("alice", "alice", stun), ("bob", "bob", stun), duration: "2s")
        #expect(directAlice.status == 1 && directBob.status == 1)
        #expect(directAlice.received == 0 && directBob.received == 0, "\(directAlice.output)\n\(directBob.output)")
        // The positive control: the same direct mode between two hosts that no NAT separates (erin on the
        // Synapse host, dave on the TURN host) works, so it is the NATs that stop alice and bob. (alice and
        // a public host are a race: Linux's NAT keeps alice's port only if her first packet leaves before
        // the other's first one arrives, which is hole punching's usual luck.)
        let (erin, dave) = try await Self.call(lab, ("hs", "erin", stun), ("turn", "dave", stun), duration: "2s")
        #expect(erin.passed && dave.passed, "\(erin.output)\n\(dave.output)")

        // The probe from behind NAT A sees NAT A's public address and says so.
        let probe = try lab.run(
            "alice",
            [TurnkeeperBinary.path, "probe", "--json"] + setup.fromSynapse(setup.tokens.alice))
        #expect(probe.status == 0, "\(probe)")
        let report = try JSONSerialization.jsonObject(with: Data(probe.stdout.utf8)) as? [String: Any] ?? [:]
        let targets = report["targets"] as? [[String: Any]] ?? []
        #expect(targets.count == 2)
        for target in targets {
            let binding = (target["steps"] as? [[String: Any]])?.first { $0["step"] as? String == "binding" }
            let facts = binding?["facts"] as? [String: String] ?? [:]
            #expect(facts["reflexive"]?.hasPrefix("203.0.113.101:") == true, "\(facts)")
            #expect(facts["local"] == "192.0.2.10" && facts["behindNAT"] == "true", "\(facts)")
        }
        let text = try lab.run("alice", [TurnkeeperBinary.path, "probe"] + setup.fromSynapse(setup.tokens.alice))
        #expect(text.stdout.contains("behind NAT: this host is 192.0.2.10"), "\(text)")

        // RFC 5780, against coturn's two addresses: what kind of NAT each host is behind.
        func nat(_ host: String) throws -> [String: Any] {
            let output = try lab.run(host, [TurnkeeperBinary.path, "probe", "stun:203.0.113.10", "--json"])
            let report = try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any]
            return report?["nat"] as? [String: Any] ?? [:]
        }
        let natA = try nat("alice")
        #expect(natA["behindNAT"] as? Bool == true && natA["mapping"] as? String == "endpoint-independent", "\(natA)")
        let natB = try nat("bob")
        #expect(natB["mapping"] as? String == "address-and-port-dependent", "\(natB)")
        let open = try nat("hs")
        #expect(open["behindNAT"] as? Bool == false && open["filtering"] as? String == "endpoint-independent")
        // coturn's own discovery tool agrees about NAT A.
        let reference = try lab.run(
            "alice",
            [
                "/usr/bin/timeout", "30", try ProcessRunner.which("turnutils_natdiscovery", package: "coturn"), "-m",
                "-f",
                "203.0.113.10",
            ])
        let filtering =
            (natA["filtering"] as? String) == "address-and-port-dependent"
            ? "Address and Port Dependent Filtering" : "?"
        #expect(
            reference.stdout.contains("Endpoint Independent Mapping") && reference.stdout.contains(filtering),
            "\(reference)\n\(natA)")
    }

    @Test("UDP from behind a NAT: nothing listening, a firewall's reject and its drop are three verdicts")
    func udpRefusedRejectedDropped() throws {
        let lab = try NATLab()
        defer { #expect(lab.down().isEmpty, "namespaces left behind") }
        // On the public TURN host, nothing runs: one port rejected as firewalld does (admin-prohibited, in each
        // family's ICMP), one dropped, one left alone.
        let rules = try lab.run(
            "turn",
            [
                "nft",
                "add table inet probe-test; add chain inet probe-test input { type filter hook input priority 0; }; "
                    + "add rule inet probe-test input udp dport 3478 reject with icmpx type admin-prohibited; "
                    + "add rule inet probe-test input udp dport 3479 drop",
            ])
        try #require(rules.status == 0, "\(rules)")
        // Over IPv4 through NAT A, and over IPv6, which alice reaches without NAT.
        for host in ["203.0.113.10", "[2001:db8:113::10]"] {
            func probe(_ port: Int, timeout: String) throws -> (code: String?, summary: String, failure: String?) {
                let output = try lab.run(
                    "alice",
                    [
                        TurnkeeperBinary.path, "probe", "--json", "turn:\(host):\(port)?transport=udp", "--timeout",
                        timeout,
                    ])
                let report = try JSONDecoder().decode(ProbeReportView.self, from: Data(output.stdout.utf8))
                return (
                    report.diagnoses.first?.code, report.diagnoses.first?.summary ?? "\(output)",
                    report.targets.first?.steps.first?.failure
                )
            }
            // A timeout far beyond the test for the ICMP answers: their verdicts cannot come from waiting. Linux
            // hands a connected socket ICMPv6 admin-prohibited not at all (measured), so over IPv6 a reject reads
            // as a drop, and only port unreachable is told apart.
            if !host.hasPrefix("[") {
                let rejected = try probe(3478, timeout: "2m")
                #expect(rejected.failure == "rejected" && rejected.code == "unreachable", "\(host): \(rejected)")
                #expect(rejected.summary.contains("rejected by the network"), "\(host): \(rejected)")
            }
            let refused = try probe(3480, timeout: "2m")
            #expect(refused.failure == "refused" && refused.code == "not-listening", "\(host): \(refused)")
            #expect(refused.summary.hasPrefix("Nothing listens on UDP \(host):3480"), "\(host): \(refused)")
            let dropped = try probe(3479, timeout: "1s")
            #expect(dropped.failure == "timeout" && dropped.code == "unreachable", "\(host): \(dropped)")
            #expect(dropped.summary.contains("does not answer over UDP"), "\(host): \(dropped)")
        }
    }

    /// The parts of `probe --json` this suite reads.
    struct ProbeReportView: Decodable {
        struct Target: Decodable {
            struct Step: Decodable { let failure: String? }
            let steps: [Step]
        }
        struct Diagnosis: Decodable {
            let code: String
            let summary: String
        }
        let targets: [Target]
        let diagnoses: [Diagnosis]
    }

    @Test("coturn behind NAT without external-ip: the probe names the fix and the call fails; with it, both pass")
    func coturnBehindNAT() async throws {
        let lab = try NATLab()
        defer { #expect(lab.down().isEmpty, "namespaces left behind") }
        let secret = try TurnSecret.generate()
        let text = secret.withExposedBytes { String(decoding: $0, as: UTF8.self) }
        let secretFile = try lab.directory.write("secret", text + "\n")
        let publicTURN = try LabCoturn(lab: lab, host: "turn", listen: ["203.0.113.10"], secrets: [text])
        defer { publicTURN.stop() }
        // alice's party uses the TURN host behind NAT T; bob's uses the public one, as two homeservers would.
        let viaNAT = ["--secret-file", secretFile, "--uri", "turn:203.0.113.30?transport=udp"]
        let viaPublic = ["--secret-file", secretFile, "--uri", "turn:203.0.113.10?transport=udp"]
        let probe = [TurnkeeperBinary.path, "probe", "turn:203.0.113.30?transport=udp", "--secret-file", secretFile]

        var hidden = try LabCoturn(lab: lab, host: "turnp", listen: ["198.18.0.10"], secrets: [text])
        let before = try lab.run("alice", probe)
        #expect(before.status == 1, "\(before)")
        #expect(before.stdout.contains("private relayed address (198.18.0.10:"), "\(before)")
        #expect(before.stdout.contains("Add external-ip=203.0.113.30/198.18.0.10 to turnserver.conf"), "\(before)")
        let (alice, bob) = try await Self.call(
            lab, ("alice", "alice", viaNAT), ("bob", "bob", viaPublic), duration: "2s")
        #expect(!alice.passed && !bob.passed && alice.received == 0, "\(alice.output)\n\(bob.output)")
        hidden.stop()

        hidden = try LabCoturn(
            lab: lab, host: "turnp", listen: ["198.18.0.10"], externalIP: "203.0.113.30/198.18.0.10", secrets: [text])
        defer { hidden.stop() }
        let after = try lab.run("alice", probe)
        #expect(after.status == 0, "\(after)")
        #expect(after.stdout.contains("relayed address 203.0.113.30:"))
        let (fixedAlice, fixedBob) = try await Self.call(
            lab, ("alice", "alice", viaNAT), ("bob", "bob", viaPublic), duration: "2s")
        #expect(fixedAlice.passed && fixedBob.passed, "\(fixedAlice.output)\n\(fixedBob.output)")
    }

    @Test("A call keeps going across a rotation and the old secret's retirement; a call after it uses the new secret")
    func rotationDuringCall() async throws {
        let lab = try NATLab()
        defer { #expect(lab.down().isEmpty, "namespaces left behind") }
        // coturn reads secrets from its SQLite userdb only; turnkeeper adopts Synapse's into it first.
        let setup = try PublicSetup(lab, secretInCoturnConfig: false, supervised: true, lifetime: "4s")
        defer { setup.stop() }
        let config = try setup.rotationConfig(lab)
        // turnkeeper runs on the Synapse host, as an admin would run it.
        let rotate: @Sendable ([String]) throws -> ProcessOutput = { arguments in
            try lab.run(
                "hs", [TurnkeeperBinary.path, "rotate", "--config", config] + arguments, timeout: .seconds(180))
        }
        let adopted = try rotate(["--resume"])
        #expect(adopted.status == 0 && adopted.stdout.contains("adopted Synapse's current secret"), "\(adopted)")

        let log = Mutex<[String]>([])
        // The call lasts until the old secret is retired, however long a loaded machine takes: it is hung up
        // then (the 30 minutes are only a bound).
        let slow = ["--rate", "20"]
        let (alice, bob) = try await Self.call(
            lab, ("alice", "alice", setup.fromSynapse(setup.tokens.alice) + slow),
            ("bob", "bob", setup.fromSynapse(setup.tokens.bob) + slow), duration: "30m", hangUp: true
        ) { running in
            // Once media flows: rotate (Synapse switches), then wait out the 4 s lifetime and retire the old
            // secret, all while the call goes on.
            try await running.streaming()
            let rotated = try rotate([])
            let retiresAt = Date().addingTimeInterval(6)
            while Date() < retiresAt { try await Task.sleep(for: .milliseconds(200)) }
            let retired = try rotate(["--resume"])
            log.withLock { $0 = [rotated.description, retired.description] }
            // Media still flows after the retirement: two more seconds of it reach each side.
            try await running.received(40, moreThan: running.received)
        }
        let (rotated, retired) = log.withLock { ($0.first ?? "", $0.last ?? "") }
        #expect(
            rotated.contains("exit 0") && rotated.contains("Synapse hands out credentials signed with"), "\(rotated)")
        #expect(retired.contains("exit 0") && retired.contains("retired"), "\(retired)")
        for call in [alice, bob] {
            #expect(call.outlivedInterlude, "the call ended before the rotation and the retirement did")
            #expect(call.passed && call.loss < 1, "\(call.output)")
            #expect(call.report["stoppedEarly"] as? Bool == true, "\(call.output)")
            // At least the 40 packets each side received after the retirement.
            #expect((call.report["expected"] as? Int ?? 0) >= 40, "\(call.output)")
        }

        // A call started afterwards gets credentials signed with the new secret, and works.
        let (after, afterBob) = try await Self.call(
            lab, ("alice", "alice", setup.fromSynapse(setup.tokens.alice)),
            ("bob", "bob", setup.fromSynapse(setup.tokens.bob)), duration: "2s")
        #expect(after.passed && afterBob.passed, "\(after.output)\n\(afterBob.output)")
        let status = try lab.run("hs", [TurnkeeperBinary.path, "status", "--config", config, "--json"])
        let current = (try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])?["current"]
        #expect(current as? String != nil && current as? String != setup.secret.fingerprint)
    }
}
