import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import TurnkeeperCrypto

/// The facts of a server certificate that an admin needs to fix it.
public struct CertificateSummary: Sendable, Hashable {
    public let names: [String]
    public let notValidBefore: Int64
    public let notValidAfter: Int64
    /// The negotiated protocol, such as "TLSv1.3".
    public let tlsVersion: String?
}

/// How a server answered a hello offering only TLS 1.0 and 1.1.
public enum LegacyTLSAnswer: Sendable, Hashable {
    /// It completed the handshake, with this version.
    case accepted(String)
    /// It answered with an alert, or closed the connection.
    case refused
    /// It accepted the connection and said nothing until the deadline.
    case unanswered
}

/// Handshakes that only look: a server's certificate fetched without verifying it (to explain why verification
/// failed, or to read its expiry), and whether it still speaks TLS below 1.2. Nothing is sent after the
/// handshake.
public enum TLSInspector {
    public static func certificate(of endpoint: ServerEndpoint, timeout: Duration) async throws -> CertificateSummary? {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = .none
        configuration.shutdownTimeout = .milliseconds(500)
        return try await handshake(endpoint, configuration, timeout: timeout)
    }

    /// How the server answers a hello offering TLS 1.0 and 1.1 only. A server that cannot be reached throws.
    public static func legacyVersion(of endpoint: ServerEndpoint, timeout: Duration) async throws -> LegacyTLSAnswer {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = .none
        configuration.shutdownTimeout = .milliseconds(500)
        configuration.minimumTLSVersion = .tlsv1
        configuration.maximumTLSVersion = .tlsv11
        do {
            return .accepted(try await handshake(endpoint, configuration, timeout: timeout)?.tlsVersion ?? "TLS < 1.2")
        } catch is NIOSSLError, is BoringSSLError {
            return .refused
        } catch ChannelError.eof {
            // An alert, then the connection closed, during the handshake.
            return .refused
        } catch is HandshakeTimedOut {
            return .unanswered
        }
    }

    private static func handshake(
        _ endpoint: ServerEndpoint, _ configuration: TLSConfiguration, timeout: Duration
    ) async throws -> CertificateSummary? {
        let context = try NIOSSLContext(configuration: configuration)
        let serverName = endpoint.hostIsIPLiteral ? nil : endpoint.host
        let handshake = MultiThreadedEventLoopGroup.singleton.next().makePromise(of: Void.self)
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(TimeAmount(timeout))
            .connect(to: endpoint.address) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        NIOSSLClientHandler(context: context, serverHostname: serverName)
                    )
                    try channel.pipeline.syncOperations.addHandler(HandshakeWaiter(handshake))
                    return channel
                }
            }
        defer { channel.close(promise: nil) }
        // The connect has its timeout; the handshake gets the same, so a server that accepts and never speaks
        // cannot hold the probe.
        let timer = channel.eventLoop.scheduleTask(in: TimeAmount(timeout)) {
            handshake.fail(HandshakeTimedOut())
            channel.close(promise: nil)
        }
        defer { timer.cancel() }
        try await handshake.futureResult.get()
        // The handler lives on the event loop; read it there.
        return try await channel.eventLoop.submit { () throws -> CertificateSummary? in
            let handler = try channel.pipeline.syncOperations.handler(type: NIOSSLClientHandler.self)
            guard let presented = handler.peerCertificate else { return nil }
            // Read with libcrypto, as provision reads the certificate it hands coturn: one X.509 reader.
            let certificate = try X509Certificate(der: try presented.toDERBytes())
            let names = certificate.subjectAlternativeNames.map { name in
                switch name {
                case .dns(let text): text
                case .ip(let bytes): ipText(bytes)
                }
            }
            // A validity period libcrypto cannot read would be judged as 1970: it is no certificate to judge.
            guard let notValidBefore = certificate.notValidBefore, let notValidAfter = certificate.notValidAfter
            else { throw X509Error(.undecodable) }
            return CertificateSummary(
                names: names,
                notValidBefore: notValidBefore,
                notValidAfter: notValidAfter,
                tlsVersion: handler.tlsVersion.map { "\($0)" }
            )
        }.get()
    }

    /// An IP subjectAltName as text; a value of another length than IPv4's 4 or IPv6's 16 bytes (a hostile or
    /// broken certificate) is only described.
    static func ipText(_ bytes: [UInt8]) -> String {
        if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
        guard bytes.count == 16 else { return "<an IP name of \(bytes.count) bytes>" }
        return stride(from: 0, to: bytes.count, by: 2).map {
            String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16)
        }
        .joined(separator: ":")
    }
}

/// Connected, but the handshake did not finish in time.
struct HandshakeTimedOut: Error, CustomStringConvertible {
    var description: String { "the TLS handshake did not finish before the deadline" }
}

/// Completes its promise when the TLS handshake finishes, or fails it with the handshake's error.
private final class HandshakeWaiter: ChannelInboundHandler {
    typealias InboundIn = NIOAny
    let completed: EventLoopPromise<Void>

    init(_ completed: EventLoopPromise<Void>) { self.completed = completed }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event { completed.succeed() }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        completed.fail(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        completed.fail(ChannelError.eof)
        context.fireChannelInactive()
    }
}
