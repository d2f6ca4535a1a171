import Glibc
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization
import TurnkeeperExecution
public import TurnkeeperSTUN

/// What a relay delivers from a peer: through a channel, or in a Data indication.
public struct PeerData: Sendable {
    public enum Source: Sendable, Hashable {
        case channel(UInt16)
        case indication(TransportAddress)
    }

    public let source: Source
    public let data: [UInt8]
    public let receivedAt: ContinuousClock.Instant
}

/// One transport connection to a STUN/TURN server: sends requests, pairs responses with them by
/// transaction ID, retransmits over UDP (RFC 8489 §6.2.1), and hands peer data to its handler.
///
/// Nothing the server sends can crash or stall it: undecodable datagrams are counted and dropped,
/// undecodable stream bytes end the connection, and every wait has a deadline.
public final class STUNConnection: Sendable {
    /// RFC 8489's initial retransmission timeout; it doubles after each transmission.
    public static let initialRTO: Duration = .milliseconds(500)

    public let endpoint: ServerEndpoint
    /// Writes bytes to the server, or on an unconnected socket to the address given.
    private let sender: @Sendable ([UInt8], SocketAddress?) async throws -> Void
    /// The same without waiting, for retransmissions from an event-loop timer (UDP); nil: none.
    private let resender: (@Sendable ([UInt8], SocketAddress?) -> Void)?
    private let state = Mutex(State())

    private struct State {
        var pending: [TransactionID: ResponseWaiter] = [:]
        var finished: TURNClientError?
        var discarded = 0
        var lastDiscardReason: String?
        var peerDataHandler: (@Sendable (PeerData) -> Void)?
    }

    /// The first error the channel pipeline saw (a TLS handshake failure, say). When a connection
    /// ends, it is the cause; the close or failed write that follows is only its symptom.
    private let pipelineFailure: @Sendable () -> TURNClientError.Kind?

    /// The NIO channel beneath, for a ``MediaPacer`` and a ``MediaSink``; nil on an unconnected socket.
    let mediaPath: MediaPath?

    init(
        endpoint: ServerEndpoint,
        pipelineFailure: @escaping @Sendable () -> TURNClientError.Kind? = { nil },
        mediaPath: MediaPath? = nil,
        resender: (@Sendable ([UInt8], SocketAddress?) -> Void)? = nil,
        sender: @escaping @Sendable ([UInt8], SocketAddress?) async throws -> Void
    ) {
        self.endpoint = endpoint
        self.pipelineFailure = pipelineFailure
        self.mediaPath = mediaPath
        self.resender = resender
        self.sender = sender
    }

    /// Where ChannelData goes in place of the peer-data handler, read without a copy on the event loop; nil
    /// restores the handler. Only connections from ``Connector`` have the path; elsewhere this does nothing.
    public func setMediaSink(_ sink: (any MediaSink)?) {
        mediaPath?.tap.set(sink)
    }

    /// Where data from peers goes; nil drops it. Called where answers are read (over UDP on the event loop,
    /// over TCP and TLS on the reader task), so it must not block.
    /// A handler rather than one stream: each phase of a probe routes data to its own stream, and
    /// cancelling one phase's wait must not end the connection's delivery.
    public func setPeerDataHandler(_ handler: (@Sendable (PeerData) -> Void)?) {
        state.withLock { $0.peerDataHandler = handler }
    }

    /// Why the connection ended (closed, reset, a protocol violation), or nil while it is open.
    public var ended: TURNClientError? { state.withLock { $0.finished } }

    /// Datagrams or frames that were not valid STUN or ChannelData, and why the last one was not.
    public var discarded: (count: Int, lastReason: String?) {
        state.withLock { ($0.discarded, $0.lastDiscardReason) }
    }

    var isReliable: Bool { endpoint.transport != .udp }

    // MARK: Sending

    /// Sends `message` and waits for its response until `deadline`. Throws ``TURNClientError``, or
    /// `CancellationError` when the task is cancelled.
    public func request(
        _ message: STUNMessage,
        integrity: STUNIntegrityKey?,
        deadline: ContinuousClock.Instant
    ) async throws -> DecodedSTUNMessage {
        try await request(message, integrity: integrity, deadline: deadline, to: nil)
    }

    /// The same, to `destination` instead of the server: only an unconnected ``DatagramSocket`` can.
    func request(
        _ message: STUNMessage,
        integrity: STUNIntegrityKey?,
        deadline: ContinuousClock.Instant,
        to destination: SocketAddress?
    ) async throws -> DecodedSTUNMessage {
        let bytes = message.encoded(integrity: integrity, fingerprint: true)
        let id = message.transactionID
        let waiter = ResponseWaiter()
        let failure: TURNClientError? = state.withLock { state in
            if let finished = state.finished { return finished }
            state.pending[id] = waiter
            return nil
        }
        if let failure { throw TURNClientError(failure.kind, method: message.type.method) }
        defer { _ = state.withLock { $0.pending.removeValue(forKey: id) } }

        try await transmit(bytes, method: message.type.method, to: destination)

        // One suspension a request, its timers on an event loop: a task group with a child for the answer, the
        // deadline and the retransmissions cost about a third of an allocation's CPU (docs/performance.md).
        // A retransmission is written from its timer, on an event loop: a task would wait for a free thread of
        // the cooperative pool, which blocking work elsewhere can hold for seconds.
        var resend: (@Sendable () -> Void)?
        if !isReliable, let resender { resend = { resender(bytes, destination) } }
        switch await waiter.wait(until: deadline, retransmit: resend) {
        case .response(let response):
            return response
        case .timedOut:
            throw TURNClientError(.timedOut, method: message.type.method)
        case .cancelled:
            throw CancellationError()
        case .connectionEnded:
            let ended = state.withLock { $0.finished } ?? TURNClientError(.closed)
            throw TURNClientError(ended.kind, method: message.type.method)
        }
    }

    /// Sends an indication or ChannelData: no answer is expected.
    public func send(_ bytes: [UInt8]) async throws {
        try await transmit(bytes, method: nil, to: nil)
    }

    private func transmit(_ bytes: [UInt8], method: STUNMethod?, to destination: SocketAddress?) async throws {
        if let finished = state.withLock({ $0.finished }) { throw TURNClientError(finished.kind, method: method) }
        do {
            try await sender(bytes, destination)
        } catch {
            throw TURNClientError(pipelineFailure() ?? Self.classify(error), method: method)
        }
    }

    // MARK: Receiving (called by the one reader: the UDP receiver on the loop, or the stream's reader task)

    func receive(frame bytes: [UInt8]) {
        let frame: TURNFrame
        do {
            frame = try TURNFrame(decoding: bytes)
        } catch {
            state.withLock {
                $0.discarded += 1
                $0.lastDiscardReason = error.description
            }
            return
        }
        switch frame {
        case .stun(let decoded):
            let message = decoded.message
            switch message.type.messageClass {
            case .successResponse, .errorResponse:
                receive(response: decoded)
            case .indication where message.type.method == .data:
                if let peer = try? message.xorAddress(.xorPeerAddress), let data = message.value(.data) {
                    deliver(PeerData(source: .indication(peer), data: data, receivedAt: .now))
                }
            default:
                break
            }
        case .channelData(let channelData):
            deliver(PeerData(source: .channel(channelData.channel), data: channelData.data, receivedAt: .now))
        }
    }

    /// A success or error response: to its request's waiter, if one is still waiting.
    func receive(response decoded: DecodedSTUNMessage) {
        let id = decoded.message.transactionID
        if let waiter = state.withLock({ $0.pending[id] }) {
            waiter.resolve(.response(decoded))
        } else {
            state.withLock {
                $0.discarded += 1
                $0.lastDiscardReason = "a response to no request of ours (transaction \(id))"
            }
        }
    }

    private func deliver(_ data: PeerData) {
        state.withLock { $0.peerDataHandler }?(data)
    }

    /// Ends the connection: every waiting request fails with `error`.
    func finish(_ error: TURNClientError) {
        let waiters = state.withLock { state -> [ResponseWaiter] in
            if state.finished == nil {
                state.finished = TURNClientError(pipelineFailure() ?? error.kind, method: error.method)
            }
            defer { state.pending.removeAll() }
            return Array(state.pending.values)
        }
        waiters.forEach { $0.resolve(.connectionEnded) }
    }

    static func classify(_ error: any Error) -> TURNClientError.Kind {
        if let error = error as? TURNClientError { return error.kind }
        if let error = error as? IOError {
            if error.errnoCode == ECONNREFUSED { return .connectionRefused }
            return .connectionFailed(error.description)
        }
        if let error = error as? NIOConnectionError {
            let refused = error.connectionErrors.contains { ($0.error as? IOError)?.errnoCode == ECONNREFUSED }
            return refused ? .connectionRefused : .connectionFailed("\(error)")
        }
        if error is ChannelError {
            if case ChannelError.connectTimeout = error { return .timedOut }
            if case ChannelError.eof = error { return .closed }
            if case ChannelError.ioOnClosedChannel = error { return .closed }
            return .connectionFailed("\(error)")
        }
        if let error = error as? NIOSSLError { return .tlsFailed(Self.describe(error)) }
        if let error = error as? BoringSSLError { return .tlsFailed("\(error)") }
        if error is NIOSSLExtraError { return .tlsFailed("\(error)") }
        return .connectionFailed("\(error)")
    }

    private static func describe(_ error: NIOSSLError) -> String {
        switch error {
        case .handshakeFailed(let inner): "\(inner)"
        case .uncleanShutdown: "the server closed the connection during the TLS handshake"
        default: "\(error)"
        }
    }
}
