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

    @Test("The media tap takes the server's ChannelData in place; everything else goes on to the reader")
    func mediaTap() throws {
        let server = try SocketAddress(ipAddress: "192.0.2.1", port: 3478)
        let other = try SocketAddress(ipAddress: "192.0.2.2", port: 3478)
        let tap = MediaTap()
        let sink = Sink()
        let channel = EmbeddedChannel(handler: DatagramMediaTapHandler(tap: tap, server: server))
        func send(_ bytes: [UInt8], from: SocketAddress) throws -> Bool {
            try channel.writeInbound(AddressedEnvelope(remoteAddress: from, data: ByteBuffer(bytes: bytes)))
            return try channel.readInbound(as: AddressedEnvelope<ByteBuffer>.self) != nil
        }
        let frame: [UInt8] = [0x40, 0x01, 0x00, 0x03, 1, 2, 3, 0]
        // No sink yet: the ordinary path.
        #expect(try send(frame, from: server))
        tap.set(sink)
        #expect(try !send(frame, from: server))
        #expect(sink.taken.map(\.0) == [0x4001] && sink.taken.map(\.1) == [[1, 2, 3]])
        // From anyone but the server, a STUN message, or a frame whose length runs past the datagram: passed on.
        #expect(try send(frame, from: other))
        #expect(
            try send([0x01, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42] + [UInt8](repeating: 0, count: 12), from: server))
        #expect(try send([0x40, 0x01, 0x00, 0x09, 1, 2, 3], from: server))
        #expect(try send([0x40], from: server))
        #expect(sink.taken.count == 1)
        tap.set(nil)
        #expect(try send(frame, from: server))
        _ = try channel.finish()
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
