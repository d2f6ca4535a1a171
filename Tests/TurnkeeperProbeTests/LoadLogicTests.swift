import Testing
import TurnkeeperTURNClient

@testable import TurnkeeperProbe

/// `turnkeeper load`'s arithmetic and judgement, in process: profiles, the tally's loss, and which limit a step
/// names first.
@Suite("Load logic")
struct LoadLogicTests {
    @Test("Profiles: voice is 50 × 160 bytes; video splits a frame into equal packets of at most 1,200 bytes")
    func profiles() {
        #expect(
            LoadProfile.voice.shape == MediaShape(frameInterval: .milliseconds(20), packetsPerFrame: 1, packetSize: 160)
        )
        // 1.5 Mbit/s at 30 frames/s: 6,250 bytes a frame, 6 packets of 1,042.
        let video = LoadProfile.video(bitsPerSecond: 1_500_000, framesPerSecond: 30).shape
        #expect(video.packetsPerFrame == 6 && video.packetSize == 1042)
        #expect(video.frameInterval == .seconds(1) / 30)
        // Tiny frames still carry the packet header.
        #expect(LoadProfile.video(bitsPerSecond: 16_000, framesPerSecond: 60).shape.packetSize == 33)
        #expect(LoadProfile.custom(packetsPerSecond: 100, packetSize: 4).shape.packetSize == MediaPacket.headerLength)
        #expect(LoadProfile.custom(packetsPerSecond: 100, packetSize: 300).shape.packetsPerSecond == 100)
    }

    @Test("Media packets are read in place; anything else is not ours")
    func packets() {
        let packet = MediaPacket.make(sequence: 0xA1B2_C3D4, sentNanos: 42, size: 100)
        #expect(packet.count == 100)
        let parsed = packet.withUnsafeBytes { MediaPacket.parse($0) }
        #expect(parsed?.sequence == 0xA1B2_C3D4 && parsed?.sentNanos == 42 && parsed?.echo == false)
        #expect(MediaPacket.parse(Array(packet.prefix(15))) == nil)
        #expect(MediaPacket.parse(Array("TKCZ".utf8) + Array(packet.dropFirst(4))) == nil)
    }

    static func step(
        refusals: [String: Int] = [:], refreshFailures: [String: Int] = [:], loss: Double = 0, held: Int = 0,
        jitter: Double = 1
    ) -> LoadStep {
        LoadStep(
            calls: 10, callsUp: 10, setupMs: .init(p50: 5, p99: 9), packetsSent: 1000, lossPercent: loss,
            jitterMs: .init(p50: jitter, p99: jitter), transitMs: .init(p50: 1, p99: 2), packetsPerSecond: 1000,
            bytesPerSecond: 160_000, allocationsPerSecond: 100, packetsHeld: held, refusals: refusals,
            refreshFailures: refreshFailures, clientCPUPercent: 10)
    }

    @Test("A step's limit: refusals explain the loss after them, loss the jitter; a carried step has none")
    func judgement() {
        let thresholds = LoadThresholds()
        #expect(LoadRunner.judge(Self.step(), thresholds: thresholds) == nil)
        let quota = LoadRunner.judge(Self.step(refusals: ["486": 2], loss: 40, jitter: 99), thresholds: thresholds)
        #expect(quota?.check == "allocation-quota" && quota?.words.contains("bps-capacity") == true)
        #expect(LoadRunner.judge(Self.step(refusals: ["508": 1]), thresholds: thresholds)?.check == "relay-capacity")
        #expect(
            LoadRunner.judge(Self.step(refreshFailures: ["403": 1], loss: 40), thresholds: thresholds)?.check
                == "refresh")
        let loss = LoadRunner.judge(Self.step(loss: 3, jitter: 99), thresholds: thresholds)
        #expect(loss?.check == "loss" && loss?.words.contains("max-bps") == true)
        #expect(LoadRunner.judge(Self.step(held: 5, jitter: 99), thresholds: thresholds)?.check == "client-backlog")
        #expect(LoadRunner.judge(Self.step(jitter: 99), thresholds: thresholds)?.check == "jitter")
        #expect(LoadRunner.judge(Self.step(refusals: ["timeout": 1]), thresholds: thresholds)?.check == "setup-timeout")
        let other = LoadRunner.judge(Self.step(refusals: ["401": 3]), thresholds: thresholds)
        #expect(other?.check == "refused" && other?.words.contains("(401)") == true)
    }

    @Test("The tally: a window counts only its own packets, and one frame a stream in flight is not loss")
    func tally() {
        let shape = MediaShape(frameInterval: .milliseconds(20), packetsPerFrame: 3, packetSize: 100)
        let tally = LoadTally(calls: 1)
        tally.beginStep()
        tally.up(setup: 5)
        tally.sent(stream: 0, packets: 30)
        tally.openWindow()
        let packet = MediaPacket.make(sequence: 0, sentNanos: MediaPacket.now(), size: 100)
        tally.sent(stream: 0, packets: 30)
        tally.sent(stream: 1, packets: 30)
        for _ in 0..<27 { packet.withUnsafeBytes { tally.received($0, stream: 0) } }
        for _ in 0..<20 { packet.withUnsafeBytes { tally.received($0, stream: 1) } }
        // Anything that is not one of our packets is not counted.
        [UInt8](repeating: 0, count: 100).withUnsafeBytes { tally.received($0, stream: 1) }
        let step = tally.closeWindow(
            calls: 1, seconds: 1, shape: shape, clientCPUPercent: 1, coturnCPUPercent: nil, coturnResidentBytes: nil)
        // 60 sent, 47 received, 3 a stream in flight: 7 lost.
        #expect(step.packetsSent == 60 && step.lossPercent == 11.7 && step.packetsPerSecond == 47)
        #expect(step.bytesPerSecond == 4700 && step.callsUp == 1)
    }
}
