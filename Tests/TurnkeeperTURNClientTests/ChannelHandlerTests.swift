import Glibc
import NIOCore
import NIOEmbedded
import Synchronization
import Testing

@testable import TurnkeeperTURNClient

/// The TURN client's pipeline handlers on `EmbeddedChannel`: datagrams and errors fed by hand.
@Suite("TURN client handlers, on EmbeddedChannel")
struct ChannelHandlerTests {
    final class Sink: MediaSink {
        let frames = Mutex<[(UInt16, [UInt8])]>([])
        func received(channel: UInt16, payload: UnsafeRawBufferPointer) {
            frames.withLock { $0.append((channel, Array(payload))) }
        }
        var taken: [(UInt16, [UInt8])] { frames.withLock { $0 } }
    }

    @Test("The receiver: the server's ChannelData to the tap or the connection, others dropped, the end passed on")
    func datagramReceiver() throws {
        let server = try SocketAddress(ipAddress: "192.0.2.1", port: 3478)
        let other = try SocketAddress(ipAddress: "192.0.2.2", port: 3478)
        let tap = MediaTap()
        let sink = Sink()
        let receiver = DatagramReceiver(tap: tap, server: server)
        let channel = EmbeddedChannel(handler: receiver)
        let connection = STUNConnection(
            endpoint: ServerEndpoint(host: "192.0.2.1", address: server, transport: .udp),
            sender: { _, _ in })
        let delivered = Mutex<[PeerData.Source]>([])
        connection.setPeerDataHandler { data in delivered.withLock { $0.append(data.source) } }
        func send(_ bytes: [UInt8], from: SocketAddress) throws {
            try channel.writeInbound(AddressedEnvelope(remoteAddress: from, data: ByteBuffer(bytes: bytes)))
            #expect(try channel.readInbound(as: AddressedEnvelope<ByteBuffer>.self) == nil, "nothing passes on")
        }
        let frame: [UInt8] = [0x40, 0x01, 0x00, 0x03, 1, 2, 3, 0]
        // Before the connection is attached, nothing is read.
        try send(frame, from: server)
        receiver.attach(connection)
        try send(frame, from: server)
        #expect(delivered.withLock { $0 } == [.channel(0x4001)])
        tap.set(sink)
        try send(frame, from: server)
        #expect(sink.taken.map(\.0) == [0x4001] && sink.taken.map(\.1) == [[1, 2, 3]])
        // From anyone but the server: dropped unread, by the tap too.
        try send(frame, from: other)
        #expect(sink.taken.count == 1 && delivered.withLock { $0 }.count == 1)
        // A response to no request and a frame whose length runs past the datagram: counted and dropped.
        try send(
            [0x01, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42] + [UInt8](repeating: 0, count: 12), from: server)
        try send([0x40, 0x01, 0x00, 0x09, 1, 2, 3], from: server)
        #expect(connection.discarded.count == 2)
        tap.set(nil)
        try send(frame, from: server)
        #expect(delivered.withLock { $0 }.count == 2)
        #expect(connection.ended == nil)
        _ = try channel.finish()
        #expect(connection.ended?.kind == .closed)
    }

    @Test("The error recorder keeps the first error, classified, and passes every error on")
    func errorRecorder() throws {
        let recorder = FirstError()
        let channel = EmbeddedChannel(handler: ErrorRecordingHandler(recorder))
        channel.pipeline.fireErrorCaught(IOError(errnoCode: ECONNREFUSED, reason: "connect"))
        #expect(throws: IOError.self) { try channel.throwIfErrorCaught() }
        let first = recorder.kind
        channel.pipeline.fireErrorCaught(IOError(errnoCode: ECONNRESET, reason: "read"))
        #expect(throws: IOError.self) { try channel.throwIfErrorCaught() }
        #expect(recorder.kind.map { "\($0)" } == first.map { "\($0)" } && first != nil)
        _ = try channel.finish()
    }
}
