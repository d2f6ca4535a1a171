import NIOCore
import NIOPosix
import TurnkeeperCore
import TurnkeeperExecution
public import TurnkeeperRESP

/// One connection to Redis for the duration of a closure, every command under a deadline. AUTH and
/// SELECT are sent first when configured.
public struct RedisEndpoint: Sendable {
    public var host: String
    public var port: Int
    public var database: Int
    public var username: String?
    /// Read from a file by the caller; never logged, never in an error.
    public var password: String?
    public var timeout: Duration

    public init(
        host: String, port: Int = 6379, database: Int = 0, username: String? = nil, password: String? = nil,
        timeout: Duration = .seconds(5)
    ) {
        self.host = host
        self.port = port
        self.database = database
        self.username = username
        self.password = password
        self.timeout = timeout
    }

    var name: String { "Redis at \(host):\(port)" }
}

/// Replies are read by one task (an inbound stream allows one reader) and handed to commands in order; a
/// timer per command puts a timeout in the same line, so a silent server cannot hang us.
public final class RedisConnection {
    private enum Event: Sendable {
        case reply(RESPValue)
        case timeout(Int)
        case failed(String)
    }

    private let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    private let endpoint: RedisEndpoint
    private let events: AsyncStream<Event>.Continuation
    private var iterator: AsyncStream<Event>.Iterator
    private var sequence = 0

    private init(
        outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>, endpoint: RedisEndpoint,
        events: AsyncStream<Event>.Continuation, stream: AsyncStream<Event>
    ) {
        self.outbound = outbound
        self.endpoint = endpoint
        self.events = events
        self.iterator = stream.makeAsyncIterator()
    }

    public static func with<Result: Sendable>(
        _ endpoint: RedisEndpoint, _ body: (RedisConnection) async throws -> Result
    ) async throws -> Result {
        let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        do {
            let (seconds, attoseconds) = endpoint.timeout.components
            channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000))
                .connect(host: endpoint.host, port: endpoint.port) { channel in
                    channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel(wrappingChannelSynchronously: channel) }
                }
        } catch {
            throw TurnkeeperError(
                .storeUnreachable,
                "cannot reach coturn's \(endpoint.name) (\(error)). coturn reads secrets from it on every login, "
                    + "so every TURN login fails while it is down: start it, and run it highly available.")
        }
        return try await channel.executeThenClose { inbound, outbound in
            let (stream, events) = AsyncStream.makeStream(of: Event.self)
            let reader = Task {
                var buffered: [UInt8] = []
                do {
                    for try await chunk in inbound {
                        buffered += Array(buffer: chunk)
                        while let (value, used) = try RESP.decode(buffered) {
                            events.yield(.reply(value))
                            buffered.removeFirst(used)
                        }
                        if buffered.count > RESP.limit + 1024 { throw RESPError(description: "a reply over 1 MiB") }
                    }
                    events.yield(.failed("closed the connection"))
                } catch {
                    events.yield(.failed("sent a malformed reply: \(error)"))
                }
            }
            defer {
                reader.cancel()
                events.finish()
            }
            let connection = RedisConnection(outbound: outbound, endpoint: endpoint, events: events, stream: stream)
            if let password = endpoint.password {
                let arguments = (endpoint.username.map { [$0] } ?? []) + [password]
                try await connection.expectOK(["AUTH"] + arguments, what: "AUTH")
            }
            if endpoint.database != 0 {
                try await connection.expectOK(["SELECT", String(endpoint.database)], what: "SELECT")
            }
            return try await body(connection)
        }
    }

    private func expectOK(_ arguments: [String], what: String) async throws {
        if case .error(let message) = try await run(arguments) {
            // Redis's AUTH errors never echo the password.
            throw TurnkeeperError(
                .storeRefused,
                "\(endpoint.name) refused \(what): \(ServerText.escaped(message)). It answers, so starting it will not "
                    + "help: check coturn.redis in turnkeeper.yaml (username, password_file, database)."
            )
        }
    }

    /// Sends one command and returns its reply, or throws when the deadline passes first.
    public func run(_ arguments: [String]) async throws -> RESPValue {
        sequence += 1
        let id = sequence
        try await outbound.write(ByteBuffer(bytes: RESP.command(arguments.map { Array($0.utf8) })))
        let (events, timeout) = (events, endpoint.timeout)
        let timer = Task {
            try await Pause.for(timeout)
            events.yield(.timeout(id))
        }
        defer { timer.cancel() }
        while let event = await iterator.next() {
            switch event {
            case .reply(let value): return value
            case .timeout(let expired) where expired == id:
                throw TurnkeeperError(
                    .storeUnreachable, "\(endpoint.name) did not answer \(arguments.first ?? "") within \(timeout)")
            case .timeout: continue  // an earlier command's timer, already answered
            case .failed(let reason):
                // The reason may quote the server's bytes (a malformed reply).
                throw TurnkeeperError(.storeUnreachable, "\(endpoint.name) \(ServerText.escaped(reason))")
            }
        }
        throw TurnkeeperError(.storeUnreachable, "\(endpoint.name) closed the connection")
    }
}
