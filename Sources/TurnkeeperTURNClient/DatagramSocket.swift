import Glibc
public import NIOCore
import NIOPosix
import Synchronization
public import TurnkeeperSTUN

/// An unconnected UDP socket for the duration of a closure: it sends to any address and hears from any,
/// which hole punching and RFC 5780's changed-address tests need. Closed however the closure ends.
///
/// STUN requests from it are ``STUNConnection`` transactions (retransmitted, matched by transaction ID,
/// from whichever address answers); everything else that arrives is in ``received``.
public final class DatagramSocket: Sendable {
    public struct Datagram: Sendable {
        public let from: SocketAddress
        public let bytes: [UInt8]
        public let receivedAt: ContinuousClock.Instant
    }

    private let outbound: NIOAsyncChannelOutboundWriter<AddressedEnvelope<ByteBuffer>>
    /// What arrives other than STUN responses, newest kept when a slow reader falls 4096 datagrams behind.
    public let received: AsyncStream<Datagram>
    public let localAddress: SocketAddress?
    /// STUN transactions with the server the socket was opened for (``request(_:to:deadline:)`` for others).
    public let stun: STUNConnection
    /// Where each recent response came from, by transaction: RFC 5780's tests ask which address answered.
    private let sources = Mutex<[TransactionID: SocketAddress]>([:])

    private init(
        outbound: NIOAsyncChannelOutboundWriter<AddressedEnvelope<ByteBuffer>>, received: AsyncStream<Datagram>,
        localAddress: SocketAddress?, stun: STUNConnection
    ) {
        self.outbound = outbound
        self.received = received
        self.localAddress = localAddress
        self.stun = stun
    }

    public func send(_ bytes: [UInt8], to address: SocketAddress) async throws {
        try await outbound.write(AddressedEnvelope(remoteAddress: address, data: ByteBuffer(bytes: bytes)))
    }

    /// A STUN request to `destination` rather than the server, as a transaction of ``stun``.
    public func request(_ message: STUNMessage, to destination: SocketAddress, deadline: ContinuousClock.Instant)
        async throws -> DecodedSTUNMessage
    {
        try await stun.request(message, integrity: nil, deadline: deadline, to: destination)
    }

    /// ``request(_:to:deadline:)``, with the address the answer came from (which a CHANGE-REQUEST moves).
    public func exchange(_ message: STUNMessage, to destination: SocketAddress, deadline: ContinuousClock.Instant)
        async throws -> (response: DecodedSTUNMessage, from: SocketAddress?)
    {
        let response = try await request(message, to: destination, deadline: deadline)
        let from = sources.withLock { $0.removeValue(forKey: response.message.transactionID) }
        return (response, from)
    }

    fileprivate func heard(_ response: DecodedSTUNMessage, from address: SocketAddress) {
        sources.withLock { sources in
            // Bounded: a peer spraying responses cannot grow it.
            if sources.count >= 64 { sources.removeAll(keepingCapacity: true) }
            sources[response.message.transactionID] = address
        }
    }

    /// Opens a socket of `server`'s address family, whose ``stun`` talks to `server` (a UDP endpoint).
    public static func withSocket<Result: Sendable>(
        server: ServerEndpoint, _ body: (DatagramSocket) async throws -> Result
    ) async throws -> Result {
        let channel: NIOAsyncChannel<AddressedEnvelope<ByteBuffer>, AddressedEnvelope<ByteBuffer>>
        do {
            channel = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .bind(to: Connector.anyLocalAddress(like: server.address)) { channel in
                    channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel(wrappingChannelSynchronously: channel) }
                }
        } catch {
            throw TURNClientError(STUNConnection.classify(error))
        }
        let localAddress = channel.channel.localAddress
        return try await channel.executeThenClose { inbound, outbound in
            let (stream, input) = AsyncStream.makeStream(of: Datagram.self, bufferingPolicy: .bufferingNewest(4096))
            let underlying = channel.channel
            let stun = STUNConnection(
                endpoint: server,
                resender: { bytes, destination in
                    let envelope = AddressedEnvelope(
                        remoteAddress: destination ?? server.address, data: ByteBuffer(bytes: bytes))
                    underlying.writeAndFlush(envelope, promise: nil)
                }
            ) { bytes, destination in
                let envelope = AddressedEnvelope(
                    remoteAddress: destination ?? server.address, data: ByteBuffer(bytes: bytes))
                try await outbound.write(envelope)
            }
            let socket = DatagramSocket(outbound: outbound, received: stream, localAddress: localAddress, stun: stun)
            return try await withThrowingTaskGroup(of: Void.self, returning: Result.self) { group in
                group.addTask {
                    defer { input.finish() }
                    do {
                        for try await envelope in inbound {
                            let bytes = Array(buffer: envelope.data)
                            if let decoded = try? DecodedSTUNMessage(bytes), decoded.isResponse {
                                socket.heard(decoded, from: envelope.remoteAddress)
                                stun.receive(response: decoded)
                            } else {
                                input.yield(Datagram(from: envelope.remoteAddress, bytes: bytes, receivedAt: .now))
                            }
                        }
                        stun.finish(TURNClientError(.closed))
                    } catch {
                        stun.finish(TURNClientError(STUNConnection.classify(error)))
                        throw error
                    }
                }
                defer { group.cancelAll() }
                return try await body(socket)
            }
        }
    }
}

/// The source address the kernel would use toward `destination`: connect(2) on a UDP socket sends nothing.
/// Compared with a server-reflexive address, it tells whether a NAT is in between.
public enum LocalRoute {
    public static func sourceAddress(toward destination: SocketAddress) -> String? {
        let family = destination.protocol == .inet6 ? AF_INET6 : AF_INET
        let fd = socket(family, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        let connected = destination.withSockAddr { address, size in connect(fd, address, socklen_t(size)) }
        guard connected == 0 else { return nil }
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { return nil }
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        let resolved = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getnameinfo($0, length, &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST)
            }
        }
        guard resolved == 0 else { return nil }
        return String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

extension DecodedSTUNMessage {
    /// A success or error response: the answer to some transaction, never media.
    fileprivate var isResponse: Bool {
        switch message.type.messageClass {
        case .successResponse, .errorResponse: true
        default: false
        }
    }
}
