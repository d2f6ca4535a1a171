import Foundation
import Synchronization
import TestSupport
import Testing

/// Chromium in the NAT lab: each party a headless browser in its own namespace behind a real NAT, logged
/// in to a real Synapse, calling the other with audio from Chromium's fake microphone and a data channel.
/// The lab's namespaces and every browser process are gone after each test, and checked to be.
@Suite("A real browser's calls in the NAT lab", .mayBlock, .tags(.live))
struct BrowserNATLabTests {
    /// The lab Synapse lets each party log in as often as the tests do.
    static let loginLimits = [
        "20-logins.yaml": """
        rc_login:
          address: {per_second: 100, burst_count: 100}
          account: {per_second: 100, burst_count: 100}
        """
    ]

    static func party(_ user: String, _ configure: (inout LabBrowser.Options) -> Void = { _ in }) -> LabBrowser.Options
    {
        var options = LabBrowser.Options(
            homeserver: "http://203.0.113.20:8008", user: user, password: "not-a-real-password")
        configure(&options)
        return options
    }

    @Test("alice (NAT A) and bob (symmetric NAT B) call relay-only with Synapse's credentials; another secret: 401")
    func relayOnlyCall() async throws {
        let lab = try NATLab()
        defer { #expect(lab.down().isEmpty, "namespaces left behind") }
        defer { #expect(LabBrowser.browsers(in: lab).isEmpty, "Chromium left running") }
        let setup = try NATLabTests.PublicSetup(lab, synapseConf: Self.loginLimits)
        defer { setup.stop() }

        let (alice, bob) = try await LabBrowser.call(lab, ("alice", Self.party("alice")), ("bob", Self.party("bob")))
        for call in [alice, bob] {
            #expect(call.relayed && call.localType == "relay", "\(call)")
            #expect(call.candidateTypes == ["relay"], "relay only: \(call)")
            #expect(call.errors.isEmpty && call.loggedOut == true, "\(call)")
            #expect(call.uris?.count == 2, "\(call)")
        }

        // A credential Synapse would never hand out: its username, another secret's password.
        let rendezvous = lab.directory.file("alone")
        try FileManager.default.createDirectory(atPath: rendezvous, withIntermediateDirectories: false)
        let wrong = try LabBrowser.start(
            lab, host: "alice", role: .alone, rendezvous: rendezvous,
            options: Self.party("alice") { $0.turnPassword = "AAAAAAAAAAAAAAAAAAAAAAAAAAA=" })
        let refused = try wrong.result()
        #expect(refused.stage == "gathered" && refused.relayCandidates == 0, "\(refused)")
        #expect(refused.errors.contains { $0.hasPrefix("401") }, "\(refused)")
        #expect(wrong.leftovers.isEmpty, "Chromium left running: \(wrong.leftovers)")
    }

    @Test("bob and carol, both behind symmetric NATs, policy all: connected through the relay; without TURN: failed")
    func symmetricBothSides() async throws {
        let lab = try NATLab()
        defer { #expect(lab.down().isEmpty, "namespaces left behind") }
        defer { #expect(LabBrowser.browsers(in: lab).isEmpty, "Chromium left running") }
        let setup = try NATLabTests.PublicSetup(lab, synapseConf: Self.loginLimits)
        defer { setup.stop() }
        _ = try setup.synapse.register("carol")
        let all: (inout LabBrowser.Options) -> Void = { $0.policy = "all" }

        let (bob, carol) = try await LabBrowser.call(
            lab, ("bob", Self.party("bob", all)), ("carol", Self.party("carol", all)))
        for call in [bob, carol] {
            // Every kind of candidate was on offer, and the one pair that works has a relay at one end.
            #expect(call.relayed, "\(call)")
            #expect(Set(call.candidateTypes).isSuperset(of: ["host", "srflx", "relay"]), "\(call)")
        }

        // The same call with TURN taken away (coturn still answers STUN): ICE tries host and server-reflexive
        // pairs, and gives up.
        let stunOnly: (inout LabBrowser.Options) -> Void = {
            $0.policy = "all"
            $0.stunOnly = "stun:203.0.113.10"
        }
        let (bobDirect, carolDirect) = try await LabBrowser.call(
            lab, ("bob", Self.party("bob", stunOnly)), ("carol", Self.party("carol", stunOnly)))
        for call in [bobDirect, carolDirect] {
            #expect(call.stage == "failed" && call.audioPackets == 0 && call.messages == 0, "\(call)")
            #expect(call.candidateTypes.contains("srflx") && !call.candidateTypes.contains("relay"), "\(call)")
        }
    }

    @Test("A browser call keeps going across a rotation and the old secret's retirement; a new call works after")
    func rotationDuringBrowserCall() async throws {
        let lab = try NATLab()
        defer { #expect(lab.down().isEmpty, "namespaces left behind") }
        defer { #expect(LabBrowser.browsers(in: lab).isEmpty, "Chromium left running") }
        // coturn reads secrets from its SQLite userdb only; turnkeeper adopts Synapse's into it first.
        let setup = try NATLabTests.PublicSetup(
            lab, secretInCoturnConfig: false, supervised: true, lifetime: "4s", synapseConf: Self.loginLimits)
        defer { setup.stop() }
        let config = try setup.rotationConfig(lab)
        let rotate: @Sendable ([String]) throws -> ProcessOutput = { arguments in
            try lab.run(
                "hs", [TurnkeeperBinary.path, "rotate", "--config", config] + arguments, timeout: .seconds(180))
        }
        let adopted = try rotate(["--resume"])
        #expect(adopted.status == 0 && adopted.stdout.contains("adopted Synapse's current secret"), "\(adopted)")

        let log = Mutex<[String]>([])
        let hold: (inout LabBrowser.Options) -> Void = { $0.hold = true }
        let (alice, bob) = try await LabBrowser.call(
            lab, ("alice", Self.party("alice", hold)), ("bob", Self.party("bob", hold))
        ) {
            // Rotate (Synapse restarts and signs with the new secret), outlive the 4 s lifetime, retire.
            let rotated = try rotate([])
            try await Task.sleep(for: .seconds(6))
            let retired = try rotate(["--resume"])
            log.withLock { $0 = [rotated.description, retired.description] }
        }
        let (rotated, retired) = log.withLock { ($0.first ?? "", $0.last ?? "") }
        #expect(
            rotated.contains("exit 0") && rotated.contains("Synapse hands out credentials signed with"), "\(rotated)")
        #expect(retired.contains("exit 0") && retired.contains("retired"), "\(retired)")
        for call in [alice, bob] {
            #expect(call.stage == "connected" && call.relayed, "\(call)")
            #expect((call.messagesAfterStop ?? 0) >= 10 && (call.audioPacketsAfterStop ?? 0) >= 50, "\(call)")
            #expect(!call.states.contains { $0.hasPrefix("failed") || $0.hasPrefix("disconnected") }, "\(call)")
        }

        // A call placed now gets credentials signed with the new secret, and connects.
        let (after, afterBob) = try await LabBrowser.call(
            lab, ("alice", Self.party("alice")), ("bob", Self.party("bob")))
        #expect(after.relayed && afterBob.relayed, "\(after)\n\(afterBob)")
    }
}
