import NIOCore
import NIOPosix
import Synchronization
import Testing
import TurnkeeperSTUN

@testable import TurnkeeperTURNClient

/// The pacer and the media tap end to end, against a loopback server that echoes every datagram or byte back:
/// the connection's own ChannelData returns to it and reaches its sink.
@Suite("Media pacer and tap", .mayBlock)
struct MediaPacerTests {
    final class Recorder: MediaSink, MediaCounter {
        struct State {
            var sequences: [UInt32] = []
            var channels: Set<UInt16> = []
            var sizes: Set<Int> = []
            var sent = 0
            var sentCalls = 0
            var held = 0
            var late = 0
            var closed: [Int] = []
        }
        let state = Mutex(State())

        func received(channel: UInt16, payload: UnsafeRawBufferPointer) {
            let packet = MediaPacket.parse(payload)
            state.withLock {
                $0.channels.insert(channel)
                $0.sizes.insert(payload.count)
                if let packet { $0.sequences.append(packet.sequence) }
            }
        }

        func sent(stream: Int, packets: Int) {
            state.withLock {
                $0.sent += packets
                $0.sentCalls += 1
            }
        }

        func held(stream: Int, packets: Int) { state.withLock { $0.held += packets } }

        func late(stream: Int, packets: Int) { state.withLock { $0.late += packets } }

        func closed(stream: Int) { state.withLock { $0.closed.append(stream) } }

        /// Waits, bounded, until `count` packets came back.
        func wait(for count: Int) async throws {
            let deadline = ContinuousClock.now + .seconds(20)
            while state.withLock({ $0.sequences.count }) < count {
                guard ContinuousClock.now < deadline else { throw EchoTimeout() }
                try await Task.sleep(for: .milliseconds(10))
            }
        }
    }

    struct EchoTimeout: Error {}

    final class DatagramEcho: ChannelInboundHandler, Sendable {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        typealias OutboundOut = AddressedEnvelope<ByteBuffer>
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            context.writeAndFlush(data, promise: nil)
        }
    }

    final class StreamEcho: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            context.writeAndFlush(data, promise: nil)
        }
    }

    static func echo(_ transport: TURNTransport) async throws -> (any Channel, ServerEndpoint) {
        let group = MultiThreadedEventLoopGroup.singleton
        let channel: any Channel
        if transport == .udp {
            channel = try await DatagramBootstrap(group: group)
                .channelInitializer { $0.pipeline.addHandler(DatagramEcho()) }
                .bind(host: "127.0.0.1", port: 0).get()
        } else {
            channel = try await ServerBootstrap(group: group)
                .childChannelInitializer { $0.pipeline.addHandler(StreamEcho()) }
                .bind(host: "127.0.0.1", port: 0).get()
        }
        let address = try #require(channel.localAddress)
        return (channel, ServerEndpoint(host: "127.0.0.1", address: address, transport: transport))
    }

    @Test(
        "Frames of three packets every 10 ms: contiguous sequences, the right channel and size, counted",
        arguments: [
            TURNTransport.udp, .tcp,
        ])
    func paced(transport: TURNTransport) async throws {
        let (server, endpoint) = try await Self.echo(transport)
        defer { server.close(promise: nil) }
        let recorder = Recorder()
        // 102 bytes: a stream pads each frame to 104, which the framer must skip.
        let pacer = MediaPacer(
            shape: MediaShape(frameInterval: .milliseconds(10), packetsPerFrame: 3, packetSize: 102), counter: recorder)
        try await Connector.withConnection(to: endpoint) { connection in
            connection.setMediaSink(recorder)
            try pacer.start(stream: 7, on: connection, channel: 0x4001)
            try await recorder.wait(for: 60)
            pacer.stop(stream: 7)
        }
        let state = recorder.state.withLock { $0 }
        #expect(state.channels == [0x4001] && state.sizes == [102])
        // In order and complete over TCP; over UDP each at most once and rising (loopback may drop one).
        if transport == .tcp {
            #expect(state.sequences == Array(0..<UInt32(state.sequences.count)), "\(state.sequences.prefix(80))")
        } else {
            #expect(zip(state.sequences, state.sequences.dropFirst()).allSatisfy { $0 < $1 })
        }
        // Counted a frame at a time, and nothing held on an idle loopback.
        #expect(state.sent >= state.sequences.count)
    }

    @Test("Without a sink, ChannelData reaches the peer-data handler as before")
    func withoutSink() async throws {
        let (server, endpoint) = try await Self.echo(.udp)
        defer { server.close(promise: nil) }
        let recorder = Recorder()
        let pacer = MediaPacer(
            shape: MediaShape(frameInterval: .milliseconds(20), packetsPerFrame: 1, packetSize: 40), counter: recorder)
        let source = try await Connector.withConnection(to: endpoint) { connection in
            let (stream, continuation) = AsyncStream.makeStream(of: PeerData.self)
            connection.setPeerDataHandler { continuation.yield($0) }
            try pacer.start(stream: 1, on: connection, channel: 0x4002)
            defer { pacer.stop(stream: 1) }
            // Bounded: a missing frame fails the test instead of hanging it.
            return await withTaskGroup(of: PeerData?.self) { group in
                group.addTask {
                    var iterator = stream.makeAsyncIterator()
                    return await iterator.next()
                }
                group.addTask {
                    try? await Task.sleep(for: .seconds(20))
                    return nil
                }
                let first = await group.next() ?? nil
                continuation.finish()
                group.cancelAll()
                return first
            }
        }
        #expect(source?.source == .channel(0x4002) && source?.data.count == 40)
        #expect(recorder.state.withLock { $0.sequences.isEmpty })
    }

    /// Closes each connection once it has read `bytes` bytes.
    final class ClosingServer: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        private var seen = 0
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            seen += unwrapInboundIn(data).readableBytes
            if seen >= 500 { context.close(promise: nil) }
        }
    }

    @Test("A connection closed under a stream: the stream is dropped and reported closed, once")
    func closedUnderneath() async throws {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { $0.pipeline.addHandler(ClosingServer()) }
            .bind(host: "127.0.0.1", port: 0).get()
        defer { server.close(promise: nil) }
        let endpoint = ServerEndpoint(host: "127.0.0.1", address: try #require(server.localAddress), transport: .tcp)
        let recorder = Recorder()
        let pacer = MediaPacer(
            shape: MediaShape(frameInterval: .milliseconds(5), packetsPerFrame: 1, packetSize: 100), counter: recorder)
        let ended = try await Connector.withConnection(to: endpoint) { connection in
            try pacer.start(stream: 3, on: connection, channel: 0x4001)
            // Both events, bounded: the pacer saw the channel close, and the connection's reader ended.
            let deadline = ContinuousClock.now + .seconds(20)
            while (recorder.state.withLock({ $0.closed.isEmpty }) || connection.ended == nil)
                && ContinuousClock.now < deadline
            {
                try await Task.sleep(for: .milliseconds(10))
            }
            return connection.ended
        }
        let state = recorder.state.withLock { $0 }
        #expect(state.closed == [3] && state.held == 0, "\(state.closed), held \(state.held)")
        #expect(ended != nil)
    }

    @Test("The tap takes only whole ChannelData: short, overlong, STUN and 11-prefixed frames pass it by")
    func tapBounds() {
        final class Sink: MediaSink, @unchecked Sendable {
            var payloads: [[UInt8]] = []
            func received(channel: UInt16, payload: UnsafeRawBufferPointer) { payloads.append(Array(payload)) }
        }
        let tap = MediaTap()
        let sink = Sink()
        func consume(_ bytes: [UInt8]) -> Bool { bytes.withUnsafeBytes { tap.consume($0) } }
        #expect(!consume([0x40, 0x00, 0x00, 0x00]), "no sink yet")
        tap.set(sink)
        #expect(consume([0x40, 0x00, 0x00, 0x00]) && consume([0x40, 0x01, 0x00, 0x02, 7, 8, 0, 0]))
        #expect(!consume([0x40, 0x00, 0x00]) && !consume([0x40, 0x00, 0x00, 0x05, 1, 2, 3, 4]))
        #expect(!consume([0x00, 0x01, 0x00, 0x00] + [UInt8](repeating: 0, count: 16)) && !consume([0xC0, 0, 0, 0]))
        #expect(sink.payloads == [[], [7, 8]])
        tap.set(nil)
        #expect(!consume([0x40, 0x00, 0x00, 0x00]))
    }
}
