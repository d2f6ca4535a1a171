import Glibc
public import NIOCore
public import NIOHTTP1
import NIOPosix
public import ServiceLifecycle
import TurnkeeperCore

/// A small HTTP/1.1 listener for /healthz, /readyz and /metrics (and the call test page, when configured).
/// One request per connection, GET and HEAD only: monitoring needs no more, and less code listens on the
/// network.
///
/// Whoever can connect must not be able to take the daemon down: connections are capped well below the
/// descriptor limit (``ConnectionLimiter``), a request must arrive within `headTimeout` and be answered within
/// `requestTimeout`, both enforced on the event loop so a busy task pool cannot hold them open, and a failing
/// accept (EMFILE, ENFILE) pauses accepting for a second instead of spinning (``AcceptPause``).
public struct HealthServer: Service {
    public struct Response: Sendable {
        public var status: HTTPResponseStatus
        public var contentType: String
        public var body: String
        /// Besides Content-Type, Content-Length, Connection and Cache-Control.
        public var headers: [(String, String)]

        public init(
            status: HTTPResponseStatus, contentType: String = "text/plain; charset=utf-8", body: String,
            headers: [(String, String)] = []
        ) {
            self.status = status
            self.contentType = contentType
            self.body = body
            self.headers = headers
        }
    }

    public typealias Handler = @Sendable (_ path: String) async -> Response
    typealias Connection = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>

    /// nil for a connection turned away at the limit.
    private let listener: NIOAsyncChannel<Connection?, Never>
    private let handler: Handler
    let limiter: ConnectionLimiter
    /// Where it listens, as bound (port 0 picks a free port).
    public let address: SocketAddress
    /// Connections held at once, at most.
    public var maxConnections: Int { limiter.capacity }

    /// Binds now, so that a port in use is a startup error rather than a surprise later. `maxConnections`
    /// defaults to a quarter of the descriptor limit, at most 256.
    public static func bind(
        host: String, port: Int, headTimeout: Duration = .seconds(5), requestTimeout: Duration = .seconds(10),
        maxConnections: Int? = nil, handler: @escaping Handler
    ) async throws -> HealthServer {
        let limiter = ConnectionLimiter(capacity: maxConnections ?? ConnectionLimiter.defaultCapacity())
        let headTimeout = TimeAmount(min(headTimeout, requestTimeout))
        let requestTimeout = TimeAmount(requestTimeout)
        let listener: NIOAsyncChannel<Connection?, Never>
        do {
            listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .serverChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(AcceptPause())
                    }
                }
                .bind(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        guard let ticket = limiter.admit(channel) else {
                            channel.close(promise: nil)
                            return nil
                        }
                        let waiting = channel.eventLoop.scheduleTask(in: headTimeout) {
                            if !limiter.isServing(ticket) { channel.close(promise: nil) }
                        }
                        let answering = channel.eventLoop.scheduleTask(in: requestTimeout) {
                            channel.close(promise: nil)
                        }
                        channel.closeFuture.whenComplete { _ in
                            waiting.cancel()
                            answering.cancel()
                            limiter.release(ticket)
                        }
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                        try channel.pipeline.syncOperations.addHandler(RequestArrival(limiter: limiter, ticket: ticket))
                        return try Connection(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            throw TurnkeeperError(
                .invalidArgument,
                "cannot listen on \(host):\(port) for health and metrics (\(error)). Choose a free address with "
                    + "daemon.listen in turnkeeper.yaml."
            )
        }
        guard let address = listener.channel.localAddress else {
            throw TurnkeeperError(.invalidArgument, "the health listener on \(host):\(port) has no address")
        }
        return HealthServer(listener: listener, handler: handler, limiter: limiter, address: address)
    }

    public func run() async throws {
        try await cancelWhenGracefulShutdown {
            try await listener.executeThenClose { inbound in
                await withDiscardingTaskGroup { group in
                    do {
                        for try await connection in inbound {
                            guard let connection else { continue }
                            group.addTask { await serve(connection) }
                        }
                    } catch {
                        // The listener closed: shutting down.
                    }
                }
            }
        }
    }

    /// Answers one request. The timers set at accept close the channel if the client is too slow, which ends
    /// the loop below.
    private func serve(_ connection: Connection) async {
        try? await connection.executeThenClose { inbound, outbound in
            var head: HTTPRequestHead?
            for try await part in inbound {
                switch part {
                case .head(let request): head = request
                case .body: continue
                case .end:
                    guard let request = head else { return }
                    try await respond(to: request, outbound)
                    return
                }
            }
        }
    }

    private func respond(
        to request: HTTPRequestHead, _ outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>
    ) async throws {
        let path = String(request.uri.prefix { $0 != "?" })
        let response: Response
        if request.method == .GET || request.method == .HEAD {
            response = await handler(path)
        } else {
            response = Response(status: .methodNotAllowed, body: "only GET and HEAD\n")
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: response.contentType)
        headers.add(name: "Content-Length", value: String(response.body.utf8.count))
        headers.add(name: "Connection", value: "close")
        headers.add(name: "Cache-Control", value: "no-store")
        for (name, value) in response.headers { headers.add(name: name, value: value) }
        try await outbound.write(.head(HTTPResponseHead(version: .http1_1, status: response.status, headers: headers)))
        if request.method != .HEAD {
            try await outbound.write(.body(.byteBuffer(ByteBuffer(string: response.body))))
        }
        try await outbound.write(.end(nil))
    }
}

/// Marks a connection as answered once its whole request has arrived, on the event loop, so that the
/// connection limit never displaces it and the head timeout no longer applies.
final class RequestArrival: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart

    let limiter: ConnectionLimiter
    private let ticket: ConnectionLimiter.Ticket

    init(limiter: ConnectionLimiter, ticket: ConnectionLimiter.Ticket) {
        self.limiter = limiter
        self.ticket = ticket
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .end = unwrapInboundIn(data) { limiter.beginServing(ticket) }
        context.fireChannelRead(data)
    }
}

/// Stops accepting for a second when accept fails for want of descriptors or memory.
///
/// NIO keeps such a listener registered for reading after the failed accept, and the connection stays in the
/// kernel's queue, so epoll reports it again at once: measured, 40,000 failing accept4 calls a second and a
/// whole core. NIO's own AcceptBackoffHandler only delays the next read it is asked for, and none is asked
/// for. Turning autoRead off unregisters the listener; turning it on again after the pause registers it.
final class AcceptPause: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = any Channel
    typealias InboundOut = any Channel

    static let pause = TimeAmount.seconds(1)
    private var paused = false

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? IOError, [EMFILE, ENFILE, ENOBUFS, ENOMEM].contains(error.errnoCode), !paused,
            let options = context.channel.syncOptions
        {
            paused = true
            try? options.setOption(.autoRead, value: false)
            let channel = context.channel
            context.eventLoop.assumeIsolated().scheduleTask(in: Self.pause) {
                self.paused = false
                try? channel.syncOptions?.setOption(.autoRead, value: true)
            }
        }
        context.fireErrorCaught(error)
    }
}
