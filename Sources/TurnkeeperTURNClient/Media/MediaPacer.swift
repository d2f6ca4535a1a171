import NIOCore
import NIOPosix

/// What one stream sends: `packetsPerFrame` packets of `packetSize` bytes every `frameInterval` (voice: one
/// packet every 20 ms; video: a frame's burst of packets every 33 ms).
public struct MediaShape: Sendable, Hashable {
    public let frameInterval: Duration
    public let packetsPerFrame: Int
    public let packetSize: Int

    /// Clamped to what the pacer can send: an interval of at least 1 ms, at least one packet a frame, and a
    /// size from the packet header (16 bytes) to what ChannelData's 16-bit length allows.
    public init(frameInterval: Duration, packetsPerFrame: Int, packetSize: Int) {
        self.frameInterval = max(frameInterval, .milliseconds(1))
        self.packetsPerFrame = max(1, packetsPerFrame)
        self.packetSize = min(max(packetSize, MediaPacket.headerLength), Int(UInt16.max) - 4)
    }

    public var packetsPerSecond: Double {
        let (seconds, attoseconds) = frameInterval.components
        return Double(packetsPerFrame) / (Double(seconds) + Double(attoseconds) / 1e18)
    }
}

/// Counts what the pacer sent, what it held back because the connection could not take more (its send
/// buffer full), what was due so long ago that it no longer mattered (not sent: the client fell behind), and
/// streams whose connection closed under them (the stream is then dropped). Called on event loops: it must not
/// block.
public protocol MediaCounter: AnyObject, Sendable {
    func sent(stream: Int, packets: Int)
    func held(stream: Int, packets: Int)
    func late(stream: Int, packets: Int)
    func closed(stream: Int)
}

/// Call-shaped traffic on many connections' bound channels, paced on the connections' own event loops: one
/// timer a loop, not a task a stream. Each packet is due at the stream's start + n × interval, so pacing never
/// drifts; a frame late by less than ``LoopPacer/tooLate`` goes at once, an older one is counted late and not
/// sent (a client that fell behind never catches up in a burst). In the steady state nothing is allocated per
/// packet: each stream's ChannelData frame is built once and its sequence and time rewritten in place.
public final class MediaPacer: Sendable {
    private let loops: [LoopPacer]

    /// On NIO's shared event loops, where ``Connector``'s connections live.
    public convenience init(shape: MediaShape, counter: any MediaCounter) {
        self.init(shape: shape, counter: counter, group: MultiThreadedEventLoopGroup.singleton)
    }

    init(shape: MediaShape, counter: any MediaCounter, group: any EventLoopGroup) {
        var loops: [LoopPacer] = []
        for loop in group.makeIterator() {
            loops.append(LoopPacer(eventLoop: loop, shape: shape, counter: counter))
        }
        self.loops = loops
    }

    /// The event loops it paces on: the cores this client can use.
    public var loopCount: Int { loops.count }

    /// Starts `stream` on `connection`'s bound `channel`: its first frame within one interval.
    public func start(stream: Int, on connection: STUNConnection, channel: UInt16) throws {
        guard let path = connection.mediaPath,
            let pacer = loops.first(where: { $0.eventLoop === path.channel.eventLoop })
        else { throw TURNClientError(.closed) }
        pacer.eventLoop.execute { pacer.start(stream: stream, path: path, channel: channel) }
    }

    public func stop(stream: Int) {
        for pacer in loops { pacer.eventLoop.execute { pacer.stop(stream: stream) } }
    }

    /// Stops every stream at once (a run's end, Ctrl-C), before the calls release their allocations; returns
    /// once every loop has stopped, with frames overdue by more than ``LoopPacer/tooLate`` counted late.
    public func stopAll() async {
        await withTaskGroup(of: Void.self) { group in
            for pacer in loops {
                group.addTask { try? await pacer.eventLoop.submit { pacer.stopAll() }.get() }
            }
        }
    }
}

/// One event loop's streams: a min-heap of due times and one scheduled callback for the earliest. Touched only
/// on its event loop (every entry point is `execute`d there or is NIO's callback), hence unchecked. Its clock is
/// given (CLOCK_MONOTONIC, as NIO's deadlines), so a test can stall it on an `EmbeddedEventLoop`.
final class LoopPacer: NIOScheduledCallbackHandler, @unchecked Sendable {
    let eventLoop: any EventLoop
    private let shape: MediaShape
    private let interval: UInt64
    private let counter: any MediaCounter
    private var streams: [Int: Stream] = [:]
    private var heap: [(due: UInt64, stream: Int, generation: Int)] = []
    private var timer: (callback: NIOScheduledCallback, due: UInt64)?
    private var generations = 0
    private let clock: @Sendable () -> UInt64

    struct Stream {
        let path: MediaPath
        let generation: Int
        var frame: ByteBuffer
        var sequence: UInt32 = 0
    }

    init(
        eventLoop: any EventLoop, shape: MediaShape, counter: any MediaCounter,
        clock: @escaping @Sendable () -> UInt64 = MediaPacket.now
    ) {
        self.eventLoop = eventLoop
        self.clock = clock
        self.shape = shape
        self.interval =
            UInt64(shape.frameInterval.components.seconds) * 1_000_000_000
            + UInt64(shape.frameInterval.components.attoseconds / 1_000_000_000)
        self.counter = counter
    }

    func start(stream: Int, path: MediaPath, channel: UInt16) {
        eventLoop.preconditionInEventLoop()
        let size = max(shape.packetSize, MediaPacket.headerLength)
        // ChannelData on a stream is padded to 4 bytes (RFC 8656 §12.5).
        let padding = path.server == nil ? (4 - size % 4) % 4 : 0
        var frame = path.channel.allocator.buffer(capacity: 4 + size + padding)
        frame.writeInteger(channel)
        frame.writeInteger(UInt16(size))
        frame.writeBytes(MediaPacket.make(sequence: 0, sentNanos: 0, size: size))
        frame.writeRepeatingByte(0, count: padding)
        generations += 1
        streams[stream] = Stream(path: path, generation: generations, frame: frame)
        // A random phase within the interval: calls started together do not all send at the same instant.
        push(due: now + UInt64.random(in: 0..<interval), stream: stream, generation: generations)
        arm()
    }

    func stop(stream: Int) {
        streams[stream] = nil
    }

    func stopAll() {
        // What a loop too busy to send fell behind by is counted as if its next wakeup had come now.
        let now = self.now
        for entry in heap where streams[entry.stream]?.generation == entry.generation && now > entry.due + Self.tooLate
        {
            let skipped = lateFrames(due: entry.due, now: now)
            counter.late(stream: entry.stream, packets: Int(skipped) * shape.packetsPerFrame)
        }
        streams.removeAll()
        heap.removeAll()
    }

    /// Frames due this close to a wakeup go with it: streams at random phases would otherwise wake the loop
    /// once a packet, which costs more than the sending.
    static let slack: UInt64 = 1_000_000
    /// A frame due longer ago than this is of no use to a receiver (its jitter buffer has played past it).
    static let tooLate: UInt64 = 200_000_000
    /// Packets sent in one wakeup at most (whole frames: a frame is never split). The rest wait a slack's time,
    /// so the loop goes back to epoll and its arriving packets, writability, timers and tasks (a step's end, a
    /// stop) have their turn: NIO runs a callback already due again in the same turn, before any I/O.
    static let packetsPerTurn = 2048

    private var now: UInt64 { clock() }

    func handleScheduledCallback(eventLoop: some EventLoop) {
        timer = nil
        let now = self.now
        let horizon = now + Self.slack
        var budget = Self.packetsPerTurn
        while budget > 0, let top = heap.first, top.due <= horizon {
            pop()
            guard streams[top.stream]?.generation == top.generation else { continue }
            var due = top.due
            if now > due + Self.tooLate {
                // Every frame due before now - tooLate is skipped, and counted.
                let skipped = lateFrames(due: due, now: now)
                due += skipped * interval
                counter.late(stream: top.stream, packets: Int(skipped) * shape.packetsPerFrame)
            }
            sendFrame(stream: top.stream)
            budget -= shape.packetsPerFrame
            push(due: due + interval, stream: top.stream, generation: top.generation)
        }
        // After the turn's sends, which take time of their own: a deadline already past would run again at once.
        arm(notBefore: budget > 0 ? 0 : self.now + Self.slack)
    }

    /// The frames from `due` on, one an interval, that fell due before `now - tooLate` (`now` past that).
    private func lateFrames(due: UInt64, now: UInt64) -> UInt64 {
        (now - Self.tooLate - due + interval - 1) / interval
    }

    func didCancelScheduledCallback(eventLoop: some EventLoop) {}

    private func sendFrame(stream: Int) {
        guard let path = streams[stream]?.path else { return }
        guard path.channel.isActive else {
            streams[stream] = nil
            counter.closed(stream: stream)
            return
        }
        var sent = 0
        while sent < shape.packetsPerFrame && path.channel.isWritable {
            // Counted before it is written: its answer can arrive before this loop ends.
            counter.sent(stream: stream, packets: 1)
            // Rewritten in place. Once the last write has left, the storage is ours alone and nothing is copied;
            // a write still pending (a full socket) makes this copy it, correctly.
            streams[stream]!.frame.setInteger(streams[stream]!.sequence, at: 4 + MediaPacket.sequenceOffset)
            streams[stream]!.frame.setInteger(MediaPacket.now(), at: 4 + MediaPacket.timeOffset)
            streams[stream]!.sequence &+= 1
            let frame = streams[stream]!.frame
            if let server = path.server {
                path.channel.writeAndFlush(AddressedEnvelope(remoteAddress: server, data: frame), promise: nil)
            } else {
                path.channel.writeAndFlush(frame, promise: nil)
            }
            sent += 1
        }
        if sent < shape.packetsPerFrame { counter.held(stream: stream, packets: shape.packetsPerFrame - sent) }
    }

    /// One callback for the earliest due frame; re-armed when an earlier one arrives.
    private func arm(notBefore: UInt64 = 0) {
        guard let first = heap.first?.due else { return }
        let due = max(first, notBefore)
        if let timer {
            if timer.due <= due { return }
            timer.callback.cancel()
        }
        if let callback = try? eventLoop.scheduleCallback(at: NIODeadline.uptimeNanoseconds(due), handler: self) {
            timer = (callback, due)
        }
    }

    private func push(due: UInt64, stream: Int, generation: Int) {
        heap.append((due, stream, generation))
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].due < heap[parent].due else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    private func pop() {
        heap.swapAt(0, heap.count - 1)
        heap.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < heap.count && heap[left].due < heap[smallest].due { smallest = left }
            if right < heap.count && heap[right].due < heap[smallest].due { smallest = right }
            if smallest == parent { return }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
    }
}
