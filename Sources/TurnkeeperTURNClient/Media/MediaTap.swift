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

/// Hands a connection's ChannelData frames to a ``MediaSink`` before they reach the async reader, without a
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

/// The tap on a datagram pipeline: only the server's datagrams are looked at. Reads go on as the async reader
/// behind it asks for them: taken datagrams never reach its buffer, so it keeps asking.
final class DatagramMediaTapHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias InboundOut = AddressedEnvelope<ByteBuffer>

    private let tap: MediaTap
    private let server: SocketAddress

    init(tap: MediaTap, server: SocketAddress) {
        self.tap = tap
        self.server = server
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        if envelope.remoteAddress == server, envelope.data.withUnsafeReadableBytes({ tap.consume($0) }) { return }
        context.fireChannelRead(data)
    }
}
