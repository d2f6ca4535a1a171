import Foundation
import TestSupport
import Testing
import TurnkeeperCredentials

/// The NAT lab's IPv6 (scripts/natlab.sh, docs/nat.md): coturn relays both families on 203.0.113.10 and
/// 2001:db8:113::10; alice is dual-stack, her IPv6 path routed without NAT through a stateful firewall; bob is
/// IPv4-only behind a symmetric NAT. Probes and calls over each family and across them.
@Suite("NAT lab, dual stack", .mayBlock, .tags(.live))
struct NATLabDualStackTests {
    struct Setup {
        let coturn: LabCoturn
        let secretFile: String

        init(_ lab: NATLab, extra: [String] = []) throws {
            let text = try TurnSecret.generate().withExposedBytes { String(decoding: $0, as: UTF8.self) }
            secretFile = try lab.directory.write("secret", text + "\n")
            coturn = try LabCoturn(
                lab: lab, host: "turn", listen: ["203.0.113.10", "2001:db8:113::10"], secrets: [text],
                extra: ["relay-ip=2001:db8:113::10"] + extra)
        }
    }

    static func probe(_ lab: NATLab, _ host: String, _ uri: String, secretFile: String) throws -> (
        ProcessOutput, [String: [String: Any]]
    ) {
        let output = try lab.run(host, [TurnkeeperBinary.path, "probe", uri, "--json", "--secret-file", secretFile])
        let report = (try? JSONSerialization.jsonObject(with: Data(output.stdout.utf8))) as? [String: Any]
        let steps = ((report?["targets"] as? [[String: Any]])?.first?["steps"] as? [[String: Any]]) ?? []
        var byName: [String: [String: Any]] = [:]
        for step in steps { byName[step["step"] as? String ?? ""] = step }
        return (output, byName)
    }

    static func facts(_ step: [String: Any]?) -> [String: String] { step?["facts"] as? [String: String] ?? [:] }

    @Test("probe over each family: no NAT on alice's IPv6 path, a relay of each family from either listener")
    func probes() throws {
        let lab = try NATLab()
        defer { #expect(lab.down().isEmpty, "namespaces left behind") }
        let setup = try Setup(lab)
        defer { setup.coturn.stop() }

        let (v6, steps6) = try Self.probe(
            lab, "alice", "turn:[2001:db8:113::10]?transport=udp", secretFile: setup.secretFile)
        #expect(v6.status == 0, "\(v6)")
        let binding = Self.facts(steps6["binding"])
        #expect(
            binding["reflexive"]?.hasPrefix("[2001:db8:a::10]:") == true && binding["behindNAT"] == "false", "\(v6)")
        #expect(Self.facts(steps6["allocation"])["relayed"]?.hasPrefix("[2001:db8:113::10]:") == true, "\(v6)")
        #expect(Self.facts(steps6["otherFamily"])["relayed"]?.hasPrefix("203.0.113.10:") == true, "\(v6)")
        #expect(steps6["relayChannelData"]?["status"] as? String == "pass", "\(v6)")

        // bob has no IPv6 at all: over IPv4, through his symmetric NAT, he is granted an IPv6 relay too.
        let (v4, steps4) = try Self.probe(lab, "bob", "turn:203.0.113.10?transport=udp", secretFile: setup.secretFile)
        #expect(v4.status == 0, "\(v4)")
        #expect(Self.facts(steps4["binding"])["behindNAT"] == "true", "\(v4)")
        #expect(Self.facts(steps4["otherFamily"])["relayed"]?.hasPrefix("[2001:db8:113::10]:") == true, "\(v4)")

        // RFC 5780 against a coturn with one address per family (OTHER-ADDRESS: its own IP, the next port).
        func nat(_ host: String, _ uri: String) throws -> [String: Any] {
            let output = try lab.run(host, [TurnkeeperBinary.path, "probe", uri, "--json"])
            let report = try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any]
            return report?["nat"] as? [String: Any] ?? [:]
        }
        // bob's NAT B draws a new port per destination: symmetric, found through the port alone (it used to be
        // called port-restricted cone here).
        let bobNAT = try nat("bob", "stun:203.0.113.10")
        #expect(bobNAT["behindNAT"] as? Bool == true, "\(bobNAT)")
        #expect(bobNAT["mapping"] as? String == "address-and-port-dependent", "\(bobNAT)")
        // alice's NAT A keeps her port: whether it depends on the address cannot be told with one IP, and is not
        // guessed.
        let aliceNAT = try nat("alice", "stun:203.0.113.10")
        #expect(aliceNAT["behindNAT"] as? Bool == true && aliceNAT["mapping"] == nil, "\(aliceNAT)")
        #expect((aliceNAT["undetermined"] as? String)?.contains("has one IP address") == true, "\(aliceNAT)")
        // Her IPv6 path has no NAT: her own, global address.
        let aliceV6 = try nat("alice", "stun:[2001:db8:113::10]")
        #expect(aliceV6["behindNAT"] as? Bool == false, "\(aliceV6)")
        #expect((aliceV6["reflexive"] as? String)?.hasPrefix("[2001:db8:a::10]:") == true, "\(aliceV6)")
    }

    @Test("Calls: across families (IPv6 to the server, IPv4 relays), over IPv6 relays, and a family mismatch named")
    func calls() async throws {
        let lab = try NATLab()
        defer { #expect(lab.down().isEmpty, "namespaces left behind") }
        let setup = try Setup(lab)
        defer { setup.coturn.stop() }
        let v6 = [
            "--secret-file", setup.secretFile, "--uri", "turn:[2001:db8:113::10]?transport=udp", "--max-loss", "50",
        ]
        let v4 = ["--secret-file", setup.secretFile, "--uri", "turn:203.0.113.10?transport=udp", "--max-loss", "50"]

        // alice reaches coturn over IPv6 and takes the default relay (IPv4), as most clients do; bob over IPv4.
        let (alice, bob) = try await NATLabTests.call(
            lab, ("alice", "alice", v6), ("bob", "bob", v4), duration: "2s")
        for call in [alice, bob] {
            #expect(call.status == 0 && call.passed && call.received > 0, "\(call.output)")
            #expect((call.report["relayed"] as? String)?.hasPrefix("203.0.113.10:") == true, "\(call.output)")
        }
        #expect(alice.reflexive.hasPrefix("[2001:db8:a::10]:"), "\(alice.output)")

        // Both ask for IPv6 relays: bob, IPv4-only, gets one over the IPv4 listener, and the media flows in IPv6.
        let (alice6, bob6) = try await NATLabTests.call(
            lab, ("alice", "alice", v6 + ["--relay-family", "ipv6"]), ("bob", "bob", v4 + ["--relay-family", "ipv6"]),
            duration: "2s")
        for call in [alice6, bob6] {
            #expect(call.status == 0 && call.passed && call.received > 0, "\(call.output)")
            #expect((call.report["relayed"] as? String)?.hasPrefix("[2001:db8:113::10]:") == true, "\(call.output)")
        }

        // One IPv6 relay, one IPv4: they cannot talk, and each side says why in plain words.
        let (mixedAlice, mixedBob) = try await NATLabTests.call(
            lab, ("alice", "alice", v6 + ["--relay-family", "ipv6"]), ("bob", "bob", v4), duration: "2s")
        for call in [mixedAlice, mixedBob] {
            #expect(call.status == 1 && !call.passed, "\(call.output)")
            #expect(call.output.contains("443 Peer Address Family Mismatch"), "\(call.output)")
        }
    }

    @Test("Chromium: alice (dual-stack) and bob (IPv4-only, symmetric NAT) call relay-only over IPv6 relays")
    func browserOverIPv6Relays() async throws {
        let lab = try NATLab()
        defer { #expect(lab.down().isEmpty, "namespaces left behind") }
        defer { #expect(LabBrowser.browsers(in: lab).isEmpty, "Chromium left running") }
        // coturn gives an IPv6 relay to a client that asks for no family: Chromium asks for none.
        let setup = try NATLabTests.PublicSetup(
            lab, synapseConf: BrowserNATLabTests.loginLimits, ipv6: ["allocation-default-address-family=ipv6"])
        defer { setup.stop() }
        let (alice, bob) = try await LabBrowser.call(
            lab, ("alice", BrowserNATLabTests.party("alice")), ("bob", BrowserNATLabTests.party("bob")))
        for call in [alice, bob] {
            #expect(call.relayed && call.localType == "relay" && call.candidateTypes == ["relay"], "\(call)")
            #expect(call.uris?.count == 3 && call.errors.allSatisfy { !$0.hasPrefix("401") }, "\(call)")
            // The pair that carried the call is between two IPv6 relays of the TURN host.
            let connected = call.states.last { $0.hasPrefix("connected") } ?? ""
            #expect(connected.contains("2001:db8:113::10") && !connected.contains("203.0.113.10"), "\(call)")
        }
    }

    @Test("The call test page from alice's dual-stack network reports each URI's relay family, and both families")
    func callTestPagePerFamily() async throws {
        let lab = try NATLab()
        defer { #expect(lab.down().isEmpty, "namespaces left behind") }
        defer { #expect(LabBrowser.browsers(in: lab).isEmpty, "Chromium left running") }
        // coturn keeps the client's family when none is asked for: the IPv6 URI gives an IPv6 relay.
        let setup = try NATLabTests.PublicSetup(
            lab, secretInCoturnConfig: false, supervised: true, synapseConf: BrowserNATLabTests.loginLimits,
            ipv6: ["allocation-default-address-family=keep"])
        defer { setup.stop() }
        let run = try await CallTestPageLabTests.serve(lab, setup)
        defer { _ = run.terminate(grace: .seconds(30)) }

        let result = try CallTestBrowser.run(
            lab, host: "alice", url: "http://203.0.113.20:9478/calltest/", user: "alice",
            password: "not-a-real-password")
        CallTestPageLabTests.expectClean(result, password: "not-a-real-password")
        #expect(result.uris.count == 3, "\(result)")
        for uri in result.uris {
            let ipv6 = (uri["uri"] as? String)?.contains("[2001:db8:113::10]") == true
            #expect(uri["passed"] as? Bool == true, "\(uri)\n\(result)")
            #expect(uri["relayFamily"] as? String == (ipv6 ? "IPv6" : "IPv4"), "\(uri)")
        }
        let families = result.object["families"] as? [String: [String: Int]]
        #expect(families?["IPv4"] == ["uris": 2, "passed": 2] && families?["IPv6"] == ["uris": 1, "passed": 1])
        #expect(result.reportText.contains("Relay families: IPv4 passed on 2 of 2 URI(s); IPv6 passed on 1 of 1"))
    }
}
