import NIOCore
import TestSupport
import Testing
import TurnkeeperTURNClient

@testable import TurnkeeperCall
@testable import TurnkeeperProbe

@Suite("Call packets, media tally and NAT behaviour", .mayBlock)
struct CallAndNATTests {
    @Test("A call packet carries its sequence and send time, padded to size; an echo keeps both")
    func packets() throws {
        let packet = MediaPacket.make(sequence: 0xA1B2_C3D4, sentNanos: 0x0102_0304_0506_0708, size: 160)
        #expect(packet.count == 160)
        let parsed = try #require(MediaPacket.parse(packet))
        #expect(!parsed.echo && parsed.sequence == 0xA1B2_C3D4 && parsed.sentNanos == 0x0102_0304_0506_0708)
        let echo = try #require(MediaPacket.parse(MediaPacket.echoing(packet)))
        #expect(echo.echo && echo.sequence == parsed.sequence && echo.sentNanos == parsed.sentNanos)
        #expect(MediaPacket.parse(Array("TKCX".utf8) + [UInt8](repeating: 0, count: 20)) == nil)
        #expect(MediaPacket.parse(Array(packet.prefix(15))) == nil)
    }

    @Test("Tally: duplicates count once; jitter follows RFC 3550's 1/16 smoothing; RTT from echoes")
    func tally() {
        let tally = MediaTally()
        // Transit 10 ms, then 14 ms: jitter 0 + (4 - 0) / 16 = 0.25 ms.
        tally.received(sequence: 0, sentNanos: 0, arrivedNanos: 10_000_000)
        tally.received(sequence: 1, sentNanos: 20_000_000, arrivedNanos: 34_000_000)
        tally.received(sequence: 1, sentNanos: 20_000_000, arrivedNanos: 90_000_000)
        tally.echoed(sentNanos: 0, arrivedNanos: 3_000_000)
        tally.echoed(sentNanos: 0, arrivedNanos: 1_000_000)
        tally.echoed(sentNanos: 0, arrivedNanos: 2_000_000)
        let summary = tally.summary
        #expect(summary.received == 2)
        #expect(summary.jitter == 0.25)
        #expect(summary.rtt?.min == 1 && summary.rtt?.median == 2 && summary.rtt?.max == 3)
    }

    @Test("Hung up on one side, both stop; each says how many packets it numbered, and the other judges by that")
    func stoppedEarly() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        typealias Packet = ([UInt8], ContinuousClock.Instant)
        let (aliceInbox, toAlice) = AsyncStream.makeStream(of: Packet.self)
        let (bobInbox, toBob) = AsyncStream.makeStream(of: Packet.self)
        let tallies = (alice: MediaTally(), bob: MediaTally())
        // alice hangs up once each has 20 of the other's packets, long before the 10 minutes planned; bob is
        // never asked to stop, and stops because she hung up.
        let aliceHangsUp: @Sendable () -> Bool = {
            tallies.alice.receivedCount >= 20 && tallies.bob.receivedCount >= 20
        }
        func options(_ name: String, _ peer: String, stop: @escaping @Sendable () -> Bool = { false }) -> CallOptions {
            var options = CallOptions(
                name: name, peer: peer, rendezvous: directory.path, rate: 200, duration: .seconds(600),
                setupTimeout: .seconds(300), stopRequested: stop)
            options.drainTimeout = .seconds(300)
            return options
        }
        async let alice = CallParty.stream(
            options: options("alice", "bob", stop: aliceHangsUp), tally: tallies.alice,
            rendezvous: Rendezvous(directory: directory.path, name: "alice", peer: "bob"), host: "192.0.2.1", port: 1,
            send: { toBob.yield(($0, .now)) }, inbound: aliceInbox)
        async let bob = CallParty.stream(
            options: options("bob", "alice"), tally: tallies.bob,
            rendezvous: Rendezvous(directory: directory.path, name: "bob", peer: "alice"), host: "192.0.2.2", port: 2,
            send: { toAlice.yield(($0, .now)) }, inbound: bobInbox)
        let streamed = await (alice: alice, bob: bob)
        #expect(streamed.alice.stoppedEarly && !streamed.alice.peerHungUp)
        #expect(streamed.bob.stoppedEarly && streamed.bob.peerHungUp)
        #expect(streamed.alice.peerNumbered == streamed.bob.numbered)
        #expect(streamed.bob.peerNumbered == streamed.alice.numbered)
        #expect(streamed.alice.numbered >= 20 && streamed.bob.numbered < options("a", "b").packets)
        // The last cards: done, with the counts; only alice's says she hung up.
        let cards = (
            alice: Rendezvous(directory: directory.path, name: "bob", peer: "alice").peerCard(),
            bob: Rendezvous(directory: directory.path, name: "alice", peer: "bob").peerCard()
        )
        #expect(cards.alice?.stage == .done && cards.alice?.hungUp == true)
        #expect(cards.bob?.stage == .done && cards.bob?.hungUp == nil)
        #expect(cards.bob?.packets == streamed.bob.numbered && (cards.bob?.received ?? 0) >= 20)

        var report = CallReport(options("alice", "bob"), mode: .relayed, uri: "turn:192.0.2.9")
        report.finish(streamed.alice, tally: tallies.alice, options: options("alice", "bob"))
        #expect(report.expected == streamed.bob.numbered && report.received == report.expected)
        #expect(report.passed && report.lossPercent == 0 && report.stoppedEarly == true)

        // A peer that says it numbered fewer than arrived cannot shrink what is expected below what arrived.
        var judged = streamed.alice
        judged.peerNumbered = 1
        var checked = CallReport(options("alice", "bob"), mode: .relayed, uri: "turn:192.0.2.9")
        checked.finish(judged, tally: tallies.alice, options: options("alice", "bob"))
        #expect(checked.expected == streamed.bob.numbered)
        // No count from a peer that was still sending when this side hung up: judged up to what arrived last.
        judged.peerNumbered = nil
        checked = CallReport(options("alice", "bob"), mode: .relayed, uri: "turn:192.0.2.9")
        checked.finish(judged, tally: tallies.alice, options: options("alice", "bob"))
        #expect(checked.expected == streamed.bob.numbered && checked.passed)
        // No count from a peer of a call that was not stopped: the plan is what is expected.
        judged.stoppedEarly = false
        checked = CallReport(options("alice", "bob"), mode: .relayed, uri: "turn:192.0.2.9")
        checked.finish(judged, tally: tallies.alice, options: options("alice", "bob"))
        #expect(checked.expected == options("a", "b").packets && !checked.passed)
        // A peer that hung up before sending anything: said so, not taken for a broken path.
        judged.peerNumbered = 0
        checked = CallReport(options("alice", "bob"), mode: .relayed, uri: "turn:192.0.2.9")
        checked.finish(judged, tally: MediaTally(), options: options("alice", "bob"))
        #expect(checked.problem?.contains("hung up before sending anything") == true, "\(checked)")
    }

    @Test("Behind NAT when the reflexive host differs from the local one")
    func behindNAT() {
        var report = CallReport(
            name: "a", peer: "b", mode: .relayed, uri: "turn:x", sent: 0, received: 0, expected: 1, lossPercent: 0,
            passed: true)
        #expect(report.behindNAT == nil)
        report.local = "192.0.2.10"
        report.reflexive = "203.0.113.101:4000"
        #expect(report.behindNAT == true)
        report.reflexive = "192.0.2.10:4000"
        #expect(report.behindNAT == false)
    }

    @Test("The NAT kinds read as the names people know")
    func natSummary() {
        let symmetric = NATBehaviour(
            behindNAT: true, mapping: .addressAndPortDependent, filtering: .addressAndPortDependent)
        #expect(symmetric.summary.hasPrefix("Behind a symmetric NAT") && symmetric.summary.contains("needs TURN"))
        let cone = NATBehaviour(behindNAT: true, mapping: .endpointIndependent, filtering: .addressAndPortDependent)
        #expect(cone.summary.hasPrefix("Behind a port-restricted-cone NAT"))
        let full = NATBehaviour(behindNAT: true, mapping: .endpointIndependent, filtering: .endpointIndependent)
        #expect(full.summary.hasPrefix("Behind a full-cone NAT"))
        let none = NATBehaviour(
            behindNAT: false, mapping: .endpointIndependent, filtering: .endpointIndependent,
            reflexive: "203.0.113.5:4000")
        #expect(none.summary.hasPrefix("No NAT: this host's address (203.0.113.5) is public"))
        // Without NAT on the path, a loopback or private address is never called public.
        for (address, word) in [
            ("127.0.0.1:4000", "loopback"), ("[::1]:4000", "loopback"), ("10.1.2.3:4000", "private"),
        ] {
            let seen = NATBehaviour(behindNAT: false, mapping: nil, filtering: nil, reflexive: address)
            #expect(seen.summary.contains(word) && !seen.summary.contains("is public"), "\(seen.summary)")
        }
        // What one server address cannot tell is said, not guessed.
        let unsure = NATBehaviour(
            behindNAT: true, mapping: nil, filtering: .addressAndPortDependent, undetermined: "one IP address")
        #expect(unsure.summary.hasPrefix("Behind a NAT (mapping endpoint-independent or address-dependent"))
        #expect(unsure.summary.hasSuffix("Not told: one IP address."))
    }

    @Test("host:port text parses back into a socket address, IPv4 and IPv6; garbage is refused")
    func hostAndPort() throws {
        for text in ["203.0.113.10:3478", "[2001:db8::7]:5349"] {
            #expect(try SocketAddress(hostAndPort: text).hostAndPort == text)
        }
        for bad in ["203.0.113.10", "x:1", "[::1]", "1.2.3.4:port"] {
            #expect(throws: (any Error).self) { try SocketAddress(hostAndPort: bad) }
        }
    }
}
