import Glibc
import Testing
import TurnkeeperTURNClient

@testable import TurnkeeperLoad
@testable import TurnkeeperProbe

/// `turnkeeper load`'s arithmetic and judgement, in process: profiles, lifetimes, the tally's loss, duplicates
/// and allocation rate, and which limit a step names first.
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
        // What the pacer cannot send is clamped, not trapped on.
        let clamped = MediaShape(frameInterval: .zero, packetsPerFrame: 0, packetSize: 100_000)
        #expect(clamped.frameInterval == .milliseconds(1) && clamped.packetsPerFrame == 1)
        #expect(clamped.packetSize == 65_531)
        #expect(LoadProfile.custom(packetsPerSecond: 0, packetSize: 100).shape.frameInterval == .seconds(1))
    }

    @Test("Lifetimes: none or 0 from the server is taken as 10 minutes, never refreshed with 0")
    func lifetimes() {
        #expect(LoadCall.granted(0) == 600 && LoadCall.granted(6) == 6 && LoadCall.granted(1_000_000) == 3600)
        #expect(LoadCall.refreshAfter(lifetime: 600) == .seconds(540))
        #expect(LoadCall.refreshAfter(lifetime: 121) == .seconds(61))
        #expect(LoadCall.refreshAfter(lifetime: 6) == .seconds(3))
        #expect(LoadCall.refreshAfter(lifetime: 1) == .seconds(1))
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
        refusals: [String: Int] = [:], refreshFailures: [String: Int] = [:], dropped: [String: Int] = [:],
        loss: Double = 0, held: Int = 0, late: Int = 0, jitter: Double = 1, clientCPU: Double = 10,
        coturnCPU: Double? = nil,
        reasons: [String: String] = [:]
    ) -> LoadStep {
        LoadStep(
            calls: 10, callsUp: 10, setupMs: .init(p50: 5, p99: 9), packetsSent: 1000, lossPercent: loss,
            jitterMs: .init(p50: jitter, p99: jitter), transitMs: .init(p50: 1, p99: 2), packetsPerSecond: 1000,
            bytesPerSecond: 160_000, allocationsPerSecond: 100, packetsHeld: held, packetsLate: late, duplicates: 0,
            refusals: refusals, retries: [:],
            refreshFailures: refreshFailures, dropped: dropped, reasons: reasons, clientCPUPercent: clientCPU,
            coturnCPUPercent: coturnCPU)
    }

    static func judge(_ step: LoadStep, shared: Bool = false) -> Limit? {
        LoadJudge.judge(step, thresholds: LoadThresholds(), sharedCredentials: shared, cores: 2)
    }

    @Test("A step's limit: refusals explain the loss after them, loss the jitter; a carried step has none")
    func judgement() {
        #expect(Self.judge(Self.step()) == nil)
        let quota = Self.judge(Self.step(refusals: ["486": 2], loss: 40, jitter: 99), shared: true)
        #expect(quota?.check == "allocation-quota" && quota?.words.contains("bps-capacity") == true)
        #expect(quota?.words.contains("every call shares one username") == true)
        let perUser = Self.judge(Self.step(refusals: ["486": 2]))
        #expect(perUser?.words.contains("each call is its own user") == true)
        #expect(Self.judge(Self.step(refusals: ["508": 1]))?.check == "relay-capacity")
        let dropped = Self.judge(
            Self.step(dropped: ["error": 3], loss: 40, reasons: ["dropped error": "the connection was reset"]))
        #expect(dropped?.check == "dropped" && dropped?.words.contains("3×error: the connection was reset") == true)
        // Every code is named, the most frequent first.
        let refresh = Self.judge(Self.step(refreshFailures: ["437": 1, "timeout": 5], loss: 40))
        #expect(refresh?.check == "refresh" && refresh?.words.contains("6 refresh(es)") == true)
        #expect(refresh?.words.contains("(5×timeout; 1×437)") == true)
        let loss = Self.judge(Self.step(loss: 3, jitter: 99))
        #expect(loss?.check == "loss" && loss?.words.contains("max-bps") == true)
        #expect(Self.judge(Self.step(held: 5, jitter: 99))?.check == "client-backlog")
        #expect(Self.judge(Self.step(jitter: 99))?.check == "jitter")
        #expect(Self.judge(Self.step(refusals: ["timeout": 1]))?.check == "setup-timeout")
        // A reason is quoted only for its own kind.
        let other = Self.judge(
            Self.step(
                refusals: ["401": 3], reasons: ["refused 401": "coturn answered 401", "refresh 401": "another"]))
        #expect(other?.check == "refused" && other?.words.contains("3×401: coturn answered 401") == true)
    }

    @Test("A client at its cores' limit is named before the loss it causes; a full machine is said beside a limit")
    func saturation() {
        // A saturated client is said beside a limit judged before it, too.
        let refresh = Self.judge(Self.step(refreshFailures: ["timeout": 1], clientCPU: 190))
        #expect(refresh?.check == "refresh" && refresh?.words.contains("This client was saturated too") == true)
        let client = Self.judge(Self.step(loss: 5, clientCPU: 190))
        #expect(client?.check == "client-saturated" && client?.words.contains("another host") == true)
        // Packets too late to send: saturated whatever its CPU figure says (the loop, not the core, was full).
        let behind = Self.judge(Self.step(loss: 5, late: 1200, clientCPU: 40))
        #expect(behind?.check == "client-saturated" && behind?.words.contains("1200 packet(s) were too late") == true)
        let machine = Self.judge(Self.step(loss: 5, clientCPU: 95, coturnCPU: 95))
        #expect(machine?.check == "loss" && machine?.words.contains("This machine's CPU was full") == true)
        #expect(Self.judge(Self.step(loss: 5, clientCPU: 40, coturnCPU: 40))?.words.contains("full") == false)
    }

    static func send(_ tally: LoadTally, stream: Int, sequences: some Sequence<Int>) {
        for sequence in sequences {
            let packet = MediaPacket.make(sequence: UInt32(sequence), sentNanos: MediaPacket.now(), size: 100)
            packet.withUnsafeBytes { tally.received($0, stream: stream) }
        }
    }

    @Test("The tally: a window is its own sequence range, late packets count until measured, duplicates once")
    func tally() {
        let shape = MediaShape(frameInterval: .milliseconds(20), packetsPerFrame: 3, packetSize: 100)
        let tally = LoadTally(calls: 1)
        tally.beginStep(calls: 1)
        tally.up(setup: 5)
        tally.sent(stream: 0, packets: 30)
        Self.send(tally, stream: 0, sequences: 0..<30)
        tally.openWindow()
        tally.sent(stream: 0, packets: 30)
        tally.sent(stream: 1, packets: 30)
        Self.send(tally, stream: 0, sequences: 30..<55)
        Self.send(tally, stream: 1, sequences: 0..<20)
        tally.closeWindow()
        // After the close, before the measure: the window's late packets still count; later ones do not.
        Self.send(tally, stream: 0, sequences: 55..<57)
        tally.sent(stream: 0, packets: 3)
        Self.send(tally, stream: 0, sequences: 60..<63)
        // Replays and duplicates are counted once; anything that is not ours, never.
        Self.send(tally, stream: 1, sequences: [0, 1, 19])
        [UInt8](repeating: 0, count: 100).withUnsafeBytes { tally.received($0, stream: 1) }
        let step = tally.measure(
            calls: 1, seconds: 1, shape: shape, clientCPUPercent: 1, coturnCPUPercent: nil, coturnResidentBytes: nil)
        // 60 sent in the window, 27 + 20 arrived: 13 lost.
        #expect(step.packetsSent == 60 && step.lossPercent == 21.7 && step.packetsPerSecond == 47, "\(step)")
        #expect(step.duplicates == 3 && step.bytesPerSecond == 4700 && step.callsUp == 1)
    }

    @Test("A packet 64 or more behind its stream's newest is lost, not a duplicate; one never sent is ignored")
    func lateAndForged() {
        let tally = LoadTally(calls: 1)
        tally.beginStep(calls: 1)
        tally.openWindow()
        tally.sent(stream: 0, packets: 100)
        Self.send(tally, stream: 0, sequences: [99, 10, 10, 98])
        // Sequence 100 has not been sent: a server replaying ahead cannot raise what arrived.
        Self.send(tally, stream: 0, sequences: [100, 5000])
        tally.closeWindow()
        let step = tally.measure(
            calls: 1, seconds: 1, shape: LoadProfile.voice.shape, clientCPUPercent: 1, coturnCPUPercent: nil,
            coturnResidentBytes: nil)
        #expect(step.packetsSent == 100 && step.packetsPerSecond == 2 && step.duplicates == 0, "\(step)")
        #expect(step.lossPercent == 98)
    }

    @Test("Allocations a second are counted until the step's last call settles, not until it is polled")
    func allocationRate() async throws {
        let tally = LoadTally(calls: 4)
        tally.beginStep(calls: 2)
        tally.up(setup: 1)
        tally.refused("486", reason: "quota")
        try await Task.sleep(for: .seconds(2))
        // A late call of this step after it settled does not raise the rate.
        tally.up(setup: 1)
        tally.openWindow()
        tally.closeWindow()
        let step = tally.measure(
            calls: 2, seconds: 1, shape: LoadProfile.voice.shape, clientCPUPercent: 1, coturnCPUPercent: nil,
            coturnResidentBytes: nil)
        // Two allocations (one call) settled at once: stamped at the poll 2 s later, it would be 1 a second.
        #expect((step.allocationsPerSecond ?? 0) > 2, "\(step)")
        #expect(step.refusals == ["486": 1] && step.reasons["refused 486"] == "quota")
    }

    @Test("Processes are found by command name in /proc, this one among them")
    func processes() async throws {
        let own = try #require(await ProcessUsage.command(getpid()))
        let found = await ProcessUsage.pids(of: own)
        let none = await ProcessUsage.pids(of: "no-such-command-x")
        let cpu = await ProcessUsage.cpuSeconds(getpid())
        let resident = await ProcessUsage.residentBytes(getpid())
        #expect(found.contains(getpid()) && none.isEmpty)
        #expect(cpu != nil && (resident ?? 0) > 0)
    }
}
