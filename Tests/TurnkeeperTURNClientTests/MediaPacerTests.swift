import NIOCore
import NIOPosix
import Synchronization
import Testing
import TurnkeeperSTUN
import TurnkeeperTURNClient

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
        let received = state.sequences.sorted()
        #expect(received == Array(0..<UInt32(received.count)), "\(received.prefix(80))")
        // Counted a frame at a time, and nothing held on an idle loopback.
        #expect(state.sent >= received.count && state.sent == state.sentCalls * 3 && state.held == 0)
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
}
