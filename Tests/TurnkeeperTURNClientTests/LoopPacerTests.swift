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
        /// Moved on by each packet sent, as sending takes time.
        let clock: Clock?
        init(clock: Clock? = nil) { self.clock = clock }
        func sent(stream: Int, packets: Int) {
            counts.withLock { $0.sent += packets }
            clock?.advance(UInt64(packets) * 2_000)
        }
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
    static func pacing(streams: Int, sendingTakesTime: Bool = false) throws
        -> (LoopPacer, EmbeddedChannel, Counter, Clock)
    {
        let channel = EmbeddedChannel()
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 3478)).wait()
        let loop = channel.embeddedEventLoop
        let clock = Clock()
        loop.advanceTime(to: .uptimeNanoseconds(clock.now))
        let counter = Counter(clock: sendingTakesTime ? clock : nil)
        let pacer = LoopPacer(
            eventLoop: loop,
            shape: MediaShape(frameInterval: .nanoseconds(Int64(interval)), packetsPerFrame: 1, packetSize: 100),
            counter: counter, clock: { clock.now })
        let path = MediaPath(channel: channel, server: nil, tap: MediaTap())
        for stream in 0..<streams { pacer.start(stream: stream, path: path, channel: 0x4001) }
        return (pacer, channel, counter, clock)
    }

    /// Moves the loop and the pacer's clock together: a loop that keeps up. The loop runs a slack ahead, as the
    /// pacer sends what falls due within a slack of its wakeup.
    static func keepUp(_ channel: EmbeddedChannel, _ clock: Clock, frames: Int) {
        for _ in 0..<frames {
            clock.advance(interval)
            channel.embeddedEventLoop.advanceTime(to: .uptimeNanoseconds(clock.now + LoopPacer.slack))
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
        // A random phase within the first interval: 9 to 11 frames in 100 ms (a slack ahead), in order from 0.
        #expect(steady == Array(0..<UInt32(steady.count)) && (9...11).contains(steady.count), "\(steady)")

        // The loop runs nothing for a second, then wakes once for the frame it was due to send then.
        let dueBefore = counter.counts.withLock { $0.sent }
        clock.advance(1_000_000_000)
        channel.embeddedEventLoop.advanceTime(by: .nanoseconds(Int64(Self.interval)))
        let burst = try Self.drain(channel)
        let (sent, late) = counter.counts.withLock { ($0.sent, $0.late) }
        // 100 frames fell due in the second (one more or less with the phase); those older than 200 ms (about
        // 80) are late; the rest (about 20) go, numbered on from the last sent: no gap reads as loss.
        #expect((79...81).contains(late), "late \(late)")
        #expect((19...22).contains(burst.count) && burst.count == sent - dueBefore, "\(burst.count) sent")
        #expect(
            burst.first == (steady.last ?? 0) + 1 && burst == Array(burst.first!..<burst.first! + UInt32(burst.count)))
        #expect(late + burst.count >= 99 && late + burst.count <= 102, "\(late) late + \(burst.count) sent")

        // Back on schedule: one frame an interval again.
        Self.keepUp(channel, clock, frames: 5)
        #expect((4...6).contains(try Self.drain(channel).count))
    }

    @Test("Many streams behind at once: a turn sends at most its packet limit, then yields; none skipped or doubled")
    func manyBehind() throws {
        let streams = LoopPacer.packetsPerTurn / 4 + 7
        let (_, channel, counter, clock) = try Self.pacing(streams: streams)
        Self.keepUp(channel, clock, frames: 1)
        _ = try Self.drain(channel)
        let before = counter.counts.withLock { $0 }
        // 150 ms behind (under the 200 ms limit): every stream has 15 or 16 frames due.
        clock.advance(150_000_000)
        // The loop's first wakeup: one turn, which stops at the limit and goes on a slack later.
        channel.embeddedEventLoop.advanceTime(by: .nanoseconds(Int64(Self.interval)))
        let firstTurn = try Self.drain(channel).count
        #expect(firstTurn == LoopPacer.packetsPerTurn)
        // The following turns send the rest.
        channel.embeddedEventLoop.advanceTime(to: .uptimeNanoseconds(clock.now + LoopPacer.slack))
        let sent = firstTurn + (try Self.drain(channel).count)
        let after = counter.counts.withLock { $0 }
        #expect(after.late == before.late)
        #expect(sent == after.sent - before.sent)
        #expect(sent >= streams * 15 && sent <= streams * 16, "\(sent) for \(streams) streams")
    }

    @Test("A turn that took longer than the wait it leaves: the next turn still waits, so the loop reads its sockets")
    func turnTakesTime() throws {
        let streams = LoopPacer.packetsPerTurn / 4 + 7
        // Each packet sent moves the clock 2 µs: a full turn takes about 4 ms, longer than the 1 ms wait.
        let (_, channel, _, clock) = try Self.pacing(streams: streams, sendingTakesTime: true)
        Self.keepUp(channel, clock, frames: 1)
        _ = try Self.drain(channel)
        clock.advance(150_000_000)
        channel.embeddedEventLoop.advanceTime(by: .nanoseconds(Int64(Self.interval)))
        #expect(try Self.drain(channel).count == LoopPacer.packetsPerTurn)
        // Where the turn ended, nothing is due yet: the loop goes back to epoll before the next turn.
        channel.embeddedEventLoop.advanceTime(to: .uptimeNanoseconds(clock.now))
        #expect(try Self.drain(channel).isEmpty)
        channel.embeddedEventLoop.advanceTime(to: .uptimeNanoseconds(clock.now + LoopPacer.slack))
        #expect(try Self.drain(channel).count > 0)
    }
}
