import NIOCore
import NIOPosix
import NIOSSL
import Synchronization
import TurnkeeperSTUN

/// Opens a ``STUNConnection`` for the duration of a closure, on NIO's shared event loops, and closes it
/// afterwards however the closure ends. Over UDP the answers are read on the event loop by a handler
/// (``DatagramReceiver``), with no reader task; over TCP and TLS through `NIOAsyncChannel.executeThenClose`.
public enum Connector {
    /// By default the connection lives on the event loop the caller runs on (any one when it runs on none), so
    /// that a request, its answer and the task awaiting it stay on one thread: a hop to another loop and back
    /// costs two wakeups a message, about 15 % of an allocation's CPU (measured). `spread` puts it on the next
    /// loop in turn instead, for many connections meant to share the cores (a load's calls).
    public static func withConnection<Result: Sendable>(
        to endpoint: ServerEndpoint,
        tls: TLSOptions = TLSOptions(),
        connectTimeout: Duration = .seconds(5),
        spread: Bool = false,
        _ body: (STUNConnection) async throws -> Result
    ) async throws -> Result {
        let loops = MultiThreadedEventLoopGroup.singleton
        let loop = spread ? loops.next() : loops.any()
        switch endpoint.transport {
        case .udp:
            return try await withDatagram(to: endpoint, on: loop, body)
        case .tcp, .tls:
            return try await withStream(to: endpoint, tls: tls, connectTimeout: connectTimeout, on: loop, body)
        }
    }

    private static func withDatagram<Result: Sendable>(
        to endpoint: ServerEndpoint,
        on loop: any EventLoop,
        _ body: (STUNConnection) async throws -> Result
    ) async throws -> Result {
        let tap = MediaTap()
        let receiver = DatagramReceiver(tap: tap, server: endpoint.address)
        let channel: any Channel
        do {
            channel = try await DatagramBootstrap(group: loop)
                // One datagram a wakeup: a second read would mostly find the socket empty (a call's stream
                // brings a packet every 20 ms), a system call a packet for nothing. epoll is level-triggered,
                // so what is left wakes the loop again.
                .channelOption(.maxMessagesPerRead, value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(receiver) }
                }
                .bind(to: anyLocalAddress(like: endpoint.address)).get()
        } catch {
            throw TURNClientError(STUNConnection.classify(error))
        }
        let remote = endpoint.address
        let connection = STUNConnection(
            endpoint: endpoint, mediaPath: MediaPath(channel: channel, server: remote, tap: tap),
            resender: { bytes, _ in
                channel.writeAndFlush(
                    AddressedEnvelope(remoteAddress: remote, data: ByteBuffer(bytes: bytes)), promise: nil)
            }
        ) { bytes, _ in
            try await channel.writeAndFlush(AddressedEnvelope(remoteAddress: remote, data: ByteBuffer(bytes: bytes)))
        }
        receiver.attach(connection)
        do {
            let result = try await body(connection)
            try? await channel.close()
            return result
        } catch {
            try? await channel.close()
            throw error
        }
    }

    /// The wildcard address of `remote`'s family, port 0. Parsed, not resolved: `bind(host:)` would ask
    /// getaddrinfo, which opens a netlink socket and makes 8 system calls of its own each time (measured).
    static func anyLocalAddress(like remote: SocketAddress) throws -> SocketAddress {
        try SocketAddress(ipAddress: remote.protocol == .inet6 ? "::" : "0.0.0.0", port: 0)
    }

    private static func withStream<Result: Sendable>(
        to endpoint: ServerEndpoint,
        tls: TLSOptions,
        connectTimeout: Duration,
        on loop: any EventLoop,
        _ body: (STUNConnection) async throws -> Result
    ) async throws -> Result {
        let sslContext: NIOSSLContext?
        if endpoint.transport == .tls {
            do {
                sslContext = try NIOSSLContext(configuration: tlsConfiguration(tls))
            } catch {
                throw TURNClientError(.tlsFailed("cannot load the TLS settings: \(error)"))
            }
        } else {
            sslContext = nil
        }
        // NIOSSL refuses an IP address as SNI; for IP literals it checks the certificate's IP SANs instead.
        let serverName = endpoint.hostIsIPLiteral ? nil : endpoint.host
        let recorder = FirstError()
        let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        do {
            channel = try await ClientBootstrap(group: loop)
                .connectTimeout(TimeAmount(connectTimeout))
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .connect(to: endpoint.address) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let sslContext {
                            let handler = try NIOSSLClientHandler(context: sslContext, serverHostname: serverName)
                            try channel.pipeline.syncOperations.addHandler(handler)
                            try channel.pipeline.syncOperations.addHandler(ErrorRecordingHandler(recorder))
                        }
                        return try NIOAsyncChannel(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            throw TURNClientError(STUNConnection.classify(error))
        }
        return try await channel.executeThenClose { inbound, outbound in
            let tap = MediaTap()
            let connection = STUNConnection(
                endpoint: endpoint, pipelineFailure: { recorder.kind },
                mediaPath: MediaPath(channel: channel.channel, server: nil, tap: tap)
            ) { bytes, _ in
                try await outbound.write(ByteBuffer(bytes: bytes))
            }
            return try await withThrowingTaskGroup(of: Void.self, returning: Result.self) { group in
                group.addTask {
                    var framer = STUNStreamFramer()
                    do {
                        for try await buffer in inbound {
                            framer.append(buffer.readableBytesView)
                            // ChannelData a media sink takes is read in place; everything else is copied out.
                            while let frame = try framer.withNextFrame({ tap.consume($0) ? nil : Array($0) }) {
                                if let frame { connection.receive(frame: frame) }
                            }
                        }
                        connection.finish(TURNClientError(.closed))
                    } catch let error as STUNDecodingError {
                        connection.finish(TURNClientError(.protocolViolation(error.description)))
                    } catch {
                        connection.finish(TURNClientError(STUNConnection.classify(error)))
                    }
                }
                defer { group.cancelAll() }
                return try await body(connection)
            }
        }
    }

    static func tlsConfiguration(_ options: TLSOptions) throws -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        // A server that stops answering after the handshake must not hold a probe for NIOSSL's default 5 s.
        configuration.shutdownTimeout = .milliseconds(500)
        if options.insecure {
            configuration.certificateVerification = .none
        } else if let caFile = options.caFile {
            configuration.trustRoots = .file(caFile)
        }
        return configuration
    }
}

/// Holds the first error a channel pipeline reported, classified.
final class FirstError: Sendable {
    private let stored = Mutex<TURNClientError.Kind?>(nil)

    var kind: TURNClientError.Kind? { stored.withLock { $0 } }

    func record(_ error: any Error) {
        stored.withLock { if $0 == nil { $0 = STUNConnection.classify(error) } }
    }
}

/// Records errors passing through the pipeline (after TLS, so handshake failures are seen) and forwards them.
final class ErrorRecordingHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let recorder: FirstError

    init(_ recorder: FirstError) { self.recorder = recorder }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        recorder.record(error)
        context.fireErrorCaught(error)
    }
}
