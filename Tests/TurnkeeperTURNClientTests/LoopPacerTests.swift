import NIOCore
import NIOEmbedded
import Synchronization
import Testing

@testable import TurnkeeperTURNClient

/// The pacer's schedule on an `EmbeddedEventLoop`, with a clock the test moves: a loop that stalls (a saturated
/// client) is simulated exactly, whatever the machine running the test is doing.
@Suite("Media pacer: falling behind")
struct LoopPacerTests {
    final class Counter: MediaCounter {
        let counts = Mutex((sent: 0, held: 0, late: 0))
        func sent(stream: Int, packets: Int) { counts.withLock { $0.sent += packets } }
        func held(stream: Int, packets: Int) { counts.withLock { $0.held += packets } }
        func late(stream: Int, packets: Int) { counts.withLock { $0.late += packets } }
        func closed(stream: Int) {}
    }

    /// The pacer's time, in nanoseconds on the loop's scale.
    final class Clock: Sendable {
        let value = Atomic<UInt64>(1_000_000_000)
        var now: UInt64 { value.load(ordering: .relaxed) }
        func advance(_ nanoseconds: UInt64) { value.add(nanoseconds, ordering: .relaxed) }
    }

    static let interval: UInt64 = 10_000_000

    /// `streams` streams of one packet every 10 ms on one embedded channel, started at the clock's now.
    static func pacing(streams: Int) throws -> (LoopPacer, EmbeddedChannel, Counter, Clock) {
        let channel = EmbeddedChannel()
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 3478)).wait()
        let loop = channel.embeddedEventLoop
        let clock = Clock()
        loop.advanceTime(to: .uptimeNanoseconds(clock.now))
        let counter = Counter()
        let pacer = LoopPacer(
            eventLoop: loop,
            shape: MediaShape(frameInterval: .nanoseconds(Int64(interval)), packetsPerFrame: 1, packetSize: 100),
            counter: counter, clock: { clock.now })
        let path = MediaPath(channel: channel, server: nil, tap: MediaTap())
        for stream in 0..<streams { pacer.start(stream: stream, path: path, channel: 0x4001) }
        return (pacer, channel, counter, clock)
    }

    /// Moves the loop and the pacer's clock together: a loop that keeps up.
    static func keepUp(_ channel: EmbeddedChannel, _ clock: Clock, frames: Int) {
        for _ in 0..<frames {
            clock.advance(interval)
            channel.embeddedEventLoop.advanceTime(to: .uptimeNanoseconds(clock.now))
        }
    }

    static func drain(_ channel: EmbeddedChannel) throws -> [UInt32] {
        var sequences: [UInt32] = []
        while let frame = try channel.readOutbound(as: ByteBuffer.self) {
            let payload = Array(frame.readableBytesView.dropFirst(4))
            sequences += payload.withUnsafeBytes { MediaPacket.parse($0) }.map { [$0.sequence] } ?? []
        }
        return sequences
    }

    @Test("A loop stalled for a second: what is more than 200 ms late is counted, not sent; the rest goes once")
    func stalled() throws {
        let (_, channel, counter, clock) = try Self.pacing(streams: 1)
        Self.keepUp(channel, clock, frames: 10)
        let steady = try Self.drain(channel)
        // A random phase within the first interval: 9 or 10 frames in 100 ms, in order from 0.
        #expect(steady == Array(0..<UInt32(steady.count)) && (9...10).contains(steady.count), "\(steady)")

        // The loop runs nothing for a second, then wakes once for the frame it was due to send then.
        let dueBefore = counter.counts.withLock { $0.sent }
        clock.advance(1_000_000_000)
        channel.embeddedEventLoop.advanceTime(by: .nanoseconds(Int64(Self.interval)))
        let burst = try Self.drain(channel)
        let (sent, late) = counter.counts.withLock { ($0.sent, $0.late) }
        // 100 frames fell due in the second (one more or less with the phase); those older than 200 ms (about
        // 80) are late; the rest (about 20) go, numbered on from the last sent: no gap reads as loss.
        #expect((79...81).contains(late), "late \(late)")
        #expect((20...22).contains(burst.count) && burst.count == sent - dueBefore, "\(burst.count) sent")
        #expect(
            burst.first == (steady.last ?? 0) + 1 && burst == Array(burst.first!..<burst.first! + UInt32(burst.count)))
        #expect(late + burst.count >= 99 && late + burst.count <= 102, "\(late) late + \(burst.count) sent")

        // Back on schedule: one frame an interval again.
        Self.keepUp(channel, clock, frames: 5)
        #expect(try Self.drain(channel).count == 5)
    }

    @Test("Many streams behind at once: none skipped or doubled by the per-turn limit")
    func manyBehind() throws {
        let streams = LoopPacer.framesPerTurn * 3 + 7
        let (_, channel, counter, clock) = try Self.pacing(streams: streams)
        Self.keepUp(channel, clock, frames: 1)
        _ = try Self.drain(channel)
        let before = counter.counts.withLock { $0 }
        // 150 ms behind (under the 200 ms limit): every stream sends its 15 overdue frames, over several turns.
        clock.advance(150_000_000)
        channel.embeddedEventLoop.advanceTime(to: .uptimeNanoseconds(clock.now))
        let after = counter.counts.withLock { $0 }
        let sent = try Self.drain(channel).count
        #expect(after.late == before.late)
        #expect(sent == after.sent - before.sent)
        #expect(sent >= streams * 15 && sent <= streams * 16, "\(sent) for \(streams) streams")
    }
}
