public import NIOCore
public import NIOHTTP1
import NIOPosix
public import ServiceLifecycle
import TurnkeeperCore

/// A small HTTP/1.1 listener for /healthz, /readyz and /metrics. One request per connection, a deadline
/// on each, GET and HEAD only: monitoring needs no more, and less code listens on the network.
public struct HealthServer: Service {
    public struct Response: Sendable {
        public var status: HTTPResponseStatus
        public var contentType: String
        public var body: String

        public init(status: HTTPResponseStatus, contentType: String = "text/plain; charset=utf-8", body: String) {
            self.status = status
            self.contentType = contentType
            self.body = body
        }
    }

    public typealias Handler = @Sendable (_ path: String) async -> Response
    typealias Connection = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>

    private let listener: NIOAsyncChannel<Connection, Never>
    private let handler: Handler
    private let requestTimeout: Duration
    /// Where it listens, as bound (port 0 picks a free port).
    public let address: SocketAddress

    /// Binds now, so that a port in use is a startup error rather than a surprise later.
    public static func bind(
        host: String, port: Int, requestTimeout: Duration = .seconds(10), handler: @escaping Handler
    ) async throws -> HealthServer {
        let listener: NIOAsyncChannel<Connection, Never>
        do {
            listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .bind(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
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
        return HealthServer(listener: listener, handler: handler, requestTimeout: requestTimeout, address: address)
    }

    public func run() async throws {
        try await cancelWhenGracefulShutdown {
            try await listener.executeThenClose { inbound in
                await withDiscardingTaskGroup { group in
                    do {
                        for try await connection in inbound {
                            group.addTask { await serve(connection) }
                        }
                    } catch {
                        // The listener closed: shutting down.
                    }
                }
            }
        }
    }

    /// Answers one request, or gives up after `requestTimeout`: a client that never finishes cannot hold a
    /// connection.
    private func serve(_ connection: Connection) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
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
            group.addTask { try? await Task.sleep(for: requestTimeout) }
            await group.next()
            group.cancelAll()
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
        try await outbound.write(.head(HTTPResponseHead(version: .http1_1, status: response.status, headers: headers)))
        if request.method != .HEAD {
            try await outbound.write(.body(.byteBuffer(ByteBuffer(string: response.body))))
        }
        try await outbound.write(.end(nil))
    }
}
