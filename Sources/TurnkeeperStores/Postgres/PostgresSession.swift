import Glibc
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import Synchronization
import TurnkeeperCore
import TurnkeeperCrypto
import TurnkeeperExecution
import TurnkeeperPostgresWire

/// What the server said when it refused something: its SQLSTATE and its words (not yet escaped).
struct PostgresServerError: Error, Sendable {
    let sqlState: String
    let message: String

    init(_ fields: [UInt8: String]) {
        sqlState = fields[UInt8(ascii: "C")] ?? ""
        message = fields[UInt8(ascii: "M")] ?? "no message"
    }
}

/// The connection failed before the server could say anything, or broke the protocol.
struct PostgresTransportError: Error, Sendable, CustomStringConvertible {
    let description: String
}

/// One logged-in connection to PostgreSQL for the duration of a closure: TLS first when asked for (refused
/// plaintext is never fallen back to), then the login, then statements one at a time. The whole session has one
/// deadline; when it passes, the connection is closed, which ends whatever was waiting on the server.
final class PostgresSession {
    private var inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    private let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    private var buffered: [UInt8] = []
    /// A refusal the server sent, kept in case it hangs up before ReadyForQuery (a FATAL error does).
    private var pendingFailure: PostgresServerError?
    /// Where the next message starts in `buffered`: consumed bytes are dropped in batches, not one by one.
    private var consumed = 0

    private init(
        inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator,
        outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    ) {
        self.inbound = inbound
        self.outbound = outbound
    }

    /// Connects, logs in, runs `body`; every failure is a PostgresServerError, a PostgresTransportError or a
    /// TurnkeeperError, and a timeout a `nil` result from the race.
    static func with<Result: Sendable>(
        _ endpoint: PostgresEndpoint, _ body: @escaping @Sendable (PostgresSession) async throws -> Result
    ) async throws -> Result? {
        let tlsContext: NIOSSLContext?
        do {
            tlsContext = endpoint.tls ? try NIOSSLContext(configuration: tlsConfiguration(endpoint)) : nil
        } catch {
            throw TurnkeeperError(
                .invalidConfiguration,
                "cannot use coturn.postgres.ca_file\(endpoint.caFile.map { " (\($0))" } ?? "") for TLS: "
                    + "\(ServerText.escaped("\(error)")). Check that it holds PEM certificates.")
        }
        let (seconds, attoseconds) = endpoint.timeout.components
        let (channel, ready): (NIOAsyncChannel<ByteBuffer, ByteBuffer>, EventLoopFuture<Void>)
        do {
            (channel, ready) = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000))
                .connect(host: endpoint.host, port: endpoint.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let ready: EventLoopFuture<Void>
                        if let tlsContext {
                            let handler = StartTLSHandler(
                                context: tlsContext,
                                serverHostname: Self.isAddress(endpoint.host) ? nil : endpoint.host,
                                ready: channel.eventLoop.makePromise())
                            try channel.pipeline.syncOperations.addHandler(handler)
                            ready = handler.ready.futureResult
                        } else {
                            ready = channel.eventLoop.makeSucceededVoidFuture()
                        }
                        return (try NIOAsyncChannel(wrappingChannelSynchronously: channel), ready)
                    }
                }
        } catch {
            throw PostgresTransportError(description: "\(error)")
        }
        let underlying = channel.channel
        let timedOut = TimeoutFlag()
        return try await channel.executeThenClose { inbound, outbound in
            try await withThrowingTaskGroup(of: Result?.self) { group in
                group.addTask {
                    do {
                        try await ready.get()
                    } catch let error as PostgresTransportError {
                        throw error
                    } catch {
                        throw PostgresTransportError(description: "TLS: \(error)")
                    }
                    let session = PostgresSession(inbound: inbound.makeAsyncIterator(), outbound: outbound)
                    try await session.logIn(endpoint)
                    let result = try await body(session)
                    try? await outbound.write(ByteBuffer(bytes: PostgresFrontend.terminate))
                    return result
                }
                group.addTask {
                    try await Pause.for(endpoint.timeout)
                    // A server that never answers, or a statement waiting on a lock: closing is what ends it.
                    timedOut.set()
                    try? await underlying.close()
                    return nil
                }
                defer { group.cancelAll() }
                do {
                    return try await group.next() ?? nil
                } catch {
                    // The session failed because the deadline closed it: that is the timeout, not a closed server.
                    if timedOut.isSet { return nil }
                    throw error
                }
            }
        }
    }

    /// Runs one statement with text parameters; its rows, each column as text or NULL.
    func rows(_ sql: String, _ parameters: [String] = []) async throws -> [[String?]] {
        try await outbound.write(ByteBuffer(bytes: PostgresFrontend.statement(sql, parameters: parameters)))
        var rows: [[String?]] = []
        var bytes = 0
        var failure: PostgresServerError?
        while true {
            switch try await next() {
            case .dataRow(let row):
                // coturn's rows are a few dozen bytes each: a server sending megabytes is refused, not stored.
                bytes += row.reduce(16) { $0 + ($1?.utf8.count ?? 0) }
                guard rows.count < 10_000, bytes <= 1 << 20 else {
                    throw PostgresTransportError(description: "sent more rows than coturn's table could hold")
                }
                rows.append(row)
            case .error(let fields):
                failure = PostgresServerError(fields)
                pendingFailure = failure
            case .readyForQuery:
                if let failure { throw failure }
                return rows
            case .authentication:
                throw PostgresTransportError(description: "an authentication request in the middle of a query")
            case .commandComplete, .ignored: continue
            }
        }
    }

    /// Logs in. Without TLS nothing proves the server is PostgreSQL (any local user could hold the port while it
    /// is down), so with a password set only SCRAM-SHA-256, whose last message proves the server knows the
    /// password, is accepted: a password in clear, MD5, or a server that lets us in unasked is refused.
    private func logIn(_ endpoint: PostgresEndpoint) async throws {
        try await send(PostgresFrontend.startup(user: endpoint.user, database: endpoint.database))
        let serverUnproven = !endpoint.tls && endpoint.password != nil
        let advice =
            "turnkeeper cannot tell it from an impostor holding the port: let \(endpoint.user) log in with "
            + "scram-sha-256 in pg_hba.conf, or set coturn.postgres.tls: true"
        var scram: SCRAMClient?
        var serverVerified = false
        var authenticated = false
        while true {
            let message = try await next()
            if case .authentication = message, authenticated { throw unexpected("a second login request") }
            switch message {
            case .authentication(let request):
                switch request {
                case .ok:
                    // A server that began SCRAM must finish it: skipping its proof is what an impostor would do.
                    if scram != nil && !serverVerified {
                        throw TurnkeeperError(.storeRefused, "the server skipped the end of SCRAM-SHA-256")
                    }
                    if serverUnproven && !serverVerified {
                        throw TurnkeeperError(
                            .storeRefused,
                            "the server let \(endpoint.user) in without asking for its password; \(advice)")
                    }
                    authenticated = true
                case .cleartextPassword:
                    if serverUnproven {
                        throw TurnkeeperError(
                            .storeRefused,
                            "the server asks for the password in clear over a connection without TLS; \(advice)")
                    }
                    try await send(PostgresFrontend.password(try Self.password(endpoint)))
                case .md5Password(let salt):
                    if serverUnproven {
                        throw TurnkeeperError(
                            .storeRefused, "the server asks for an MD5 login over a connection without TLS; \(advice)")
                    }
                    let inner = Hex.encode(Digest.md5(try Self.password(endpoint) + Array(endpoint.user.utf8)))
                    let outer = Hex.encode(Digest.md5(Array(inner.utf8) + salt))
                    try await send(PostgresFrontend.password(Array(("md5" + outer).utf8)))
                case .sasl(let mechanisms):
                    guard scram == nil else { throw unexpected("a second SASL request") }
                    guard mechanisms.contains("SCRAM-SHA-256") else {
                        throw TurnkeeperError(
                            .storeRefused,
                            "the server offers only \(ServerText.escaped(mechanisms.joined(separator: ", "))) to log "
                                + "in; turnkeeper speaks SCRAM-SHA-256, MD5 and password (pg_hba.conf)")
                    }
                    let client = SCRAMClient(password: try Self.password(endpoint), nonce: try SCRAMClient.makeNonce())
                    scram = client
                    try await send(
                        PostgresFrontend.saslInitialResponse(mechanism: "SCRAM-SHA-256", data: client.clientFirst))
                case .saslContinue(let serverFirst):
                    guard let client = scram else { throw unexpected("SASLContinue") }
                    // PBKDF2 costs as many hashes as the server asks for: off the event loops.
                    let (answered, final) = try await Blocking.run { () throws -> (SCRAMClient, [UInt8]) in
                        var client = client
                        let final = try client.clientFinal(serverFirst: serverFirst)
                        return (client, final)
                    }
                    scram = answered
                    try await send(PostgresFrontend.saslResponse(final))
                case .saslFinal(let serverFinal):
                    guard let client = scram, !serverVerified else { throw unexpected("SASLFinal") }
                    try client.verify(serverFinal: serverFinal)
                    serverVerified = true
                case .unsupported(let code):
                    throw TurnkeeperError(
                        .storeRefused,
                        "the server asks for a login method turnkeeper does not speak (code \(code): Kerberos, GSSAPI "
                            + "or SSPI). Let turnkeeper's user log in with scram-sha-256 in pg_hba.conf")
                }
            case .error(let fields): throw PostgresServerError(fields)
            case .readyForQuery:
                guard authenticated else { throw unexpected("ReadyForQuery before the login succeeded") }
                return
            case .dataRow, .commandComplete: throw unexpected("a row before logging in")
            case .ignored: continue
            }
        }
    }

    private func unexpected(_ what: String) -> PostgresTransportError {
        PostgresTransportError(description: "the server sent \(what) out of turn")
    }

    private static func password(_ endpoint: PostgresEndpoint) throws(TurnkeeperError) -> [UInt8] {
        guard let password = endpoint.password else {
            throw TurnkeeperError(
                .storeRefused,
                "the server asks \(endpoint.user) for a password and none is set: set coturn.postgres.password_file")
        }
        return Array(password.utf8)
    }

    private func send(_ bytes: [UInt8]) async throws { try await outbound.write(ByteBuffer(bytes: bytes)) }

    private func next() async throws -> PostgresBackend {
        while true {
            if let (message, used) = try PostgresBackend.decode(buffered[consumed...]) {
                consumed += used
                return message
            }
            guard let chunk = try await inbound.next() else {
                if let pendingFailure { throw pendingFailure }
                throw PostgresTransportError(description: "the server closed the connection")
            }
            if consumed > 0 {
                buffered.removeFirst(consumed)
                consumed = 0
            }
            buffered += Array(buffer: chunk)
        }
    }

    /// The client's TLS settings: the server's name (or address) and chain checked, against `caFile` when given.
    static func tlsConfiguration(_ endpoint: PostgresEndpoint) -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        if let caFile = endpoint.caFile { configuration.trustRoots = .file(caFile) }
        // A closing session waits this long at most for the server's close_notify.
        configuration.shutdownTimeout = .seconds(1)
        return configuration
    }

    /// NIOSSL refuses an IP address as SNI; it checks an address against the certificate by itself.
    static func isAddress(_ host: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }
}

/// Set once the session's deadline has passed.
private final class TimeoutFlag: Sendable {
    private let value = Atomic(false)
    func set() { value.store(true, ordering: .releasing) }
    var isSet: Bool { value.load(ordering: .acquiring) }
}

/// PostgreSQL's STARTTLS: sends SSLRequest, and on `S` puts TLS in front of everything else. `N` (or anything
/// else) fails the session: turnkeeper never falls back to plaintext. A byte after `S` before TLS begins is
/// refused too: it would be an attacker's, injected into what looks like the encrypted stream (CVE-2021-23222).
final class StartTLSHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let context: NIOSSLContext
    private let serverHostname: String?
    let ready: EventLoopPromise<Void>
    private let upgraded = Mutex(false)
    private let settled = Mutex(false)

    /// Completes `ready` once; later outcomes (the connection closing after a failure) are dropped.
    private func settle(_ error: (any Error)?) {
        guard
            settled.withLock({ done in
                defer { done = true }
                return !done
            })
        else { return }
        if let error { ready.fail(error) } else { ready.succeed() }
    }

    init(context: NIOSSLContext, serverHostname: String?, ready: EventLoopPromise<Void>) {
        self.context = context
        self.serverHostname = serverHostname
        self.ready = ready
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { request(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        request(context)
        context.fireChannelActive()
    }

    private func request(_ context: ChannelHandlerContext) {
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: PostgresFrontend.sslRequest)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !upgraded.withLock({ $0 }) else {
            context.fireChannelRead(data)
            return
        }
        let buffer = unwrapInboundIn(data)
        guard buffer.readableBytes == 1, buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) == UInt8(ascii: "S")
        else {
            let answer = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self)
            let reason =
                answer == UInt8(ascii: "N")
                ? "the server does not offer TLS (set ssl = on in postgresql.conf, or coturn.postgres.tls: false on a "
                    + "trusted network)"
                : "the server's answer to the TLS request is not PostgreSQL's"
            settle(PostgresTransportError(description: reason))
            context.close(promise: nil)
            return
        }
        upgraded.withLock { $0 = true }
        do {
            let tls = try NIOSSLClientHandler(context: self.context, serverHostname: serverHostname)
            try context.pipeline.syncOperations.addHandler(tls, position: .before(self))
        } catch {
            settle(PostgresTransportError(description: "TLS: \(error)"))
            context.close(promise: nil)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent { settle(nil) }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        settle(error)
        context.fireErrorCaught(error)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        settle(PostgresTransportError(description: "the connection ended before TLS began"))
    }

    func channelInactive(context: ChannelHandlerContext) {
        settle(PostgresTransportError(description: "the server closed the connection"))
        context.fireChannelInactive()
    }
}
