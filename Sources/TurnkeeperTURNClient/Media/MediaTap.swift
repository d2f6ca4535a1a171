import NIOCore
import Synchronization

/// Where a connection's ChannelData goes when a load run reads it in place, with bytes valid only for the call,
/// so it must neither block nor keep them. Over UDP it is called on the event loop, in the pipeline; over TCP and
/// TLS by the connection's reader task, after framing.
public protocol MediaSink: AnyObject, Sendable {
    func received(channel: UInt16, payload: UnsafeRawBufferPointer)
}

/// A connection's NIO channel, for writing media on its event loop, and its tap. `server` is where datagrams go
/// (nil on a stream, which is connected).
struct MediaPath: Sendable {
    let channel: any Channel
    let server: SocketAddress?
    let tap: MediaTap
}

/// Hands a connection's ChannelData frames to a ``MediaSink`` before they reach the connection, without a
/// copy; with no sink, every frame takes the ordinary path.
final class MediaTap: Sendable {
    private let sink = Mutex<(any MediaSink)?>(nil)

    func set(_ sink: (any MediaSink)?) { self.sink.withLock { $0 = sink } }

    /// True when `frame` was ChannelData and a sink took it.
    func consume(_ frame: UnsafeRawBufferPointer) -> Bool {
        guard frame.count >= 4, frame[0] >> 6 == 1, let sink = sink.withLock({ $0 }) else { return false }
        let length = Int(frame[2]) << 8 | Int(frame[3])
        guard 4 + length <= frame.count else { return false }
        let channel = UInt16(frame[0]) << 8 | UInt16(frame[1])
        sink.received(channel: channel, payload: UnsafeRawBufferPointer(rebasing: frame[4..<(4 + length)]))
        return true
    }
}

/// The end of a datagram pipeline: the server's datagrams go to the tap or, failing that, to the connection, read on
/// the event loop; anything from elsewhere is dropped unread. The connection ends when the channel does, or at the
/// channel's first error (which closes it, as the reader before it did).
final class DatagramReceiver: ChannelInboundHandler, Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    private let tap: MediaTap
    private let server: SocketAddress
    /// Set once the connection exists, before its first request: datagrams before that answer nothing of ours.
    private let connection = Mutex<STUNConnection?>(nil)

    init(tap: MediaTap, server: SocketAddress) {
        self.tap = tap
        self.server = server
    }

    func attach(_ connection: STUNConnection) { self.connection.withLock { $0 = connection } }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        guard envelope.remoteAddress == server else { return }
        if envelope.data.withUnsafeReadableBytes({ tap.consume($0) }) { return }
        connection.withLock { $0 }?.receive(frame: Array(buffer: envelope.data))
    }

    func channelInactive(context: ChannelHandlerContext) {
        connection.withLock { $0 }?.finish(TURNClientError(.closed))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        connection.withLock { $0 }?.finish(TURNClientError(STUNConnection.classify(error)))
        context.close(promise: nil)
    }
}
