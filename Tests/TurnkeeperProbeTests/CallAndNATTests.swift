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
