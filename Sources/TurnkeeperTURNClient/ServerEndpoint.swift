public import NIOCore

/// How to reach a STUN/TURN server: TURN over UDP, TCP, or TLS over TCP.
public enum TURNTransport: String, Sendable, Hashable, CaseIterable {
    case udp
    case tcp
    case tls
}

/// One resolved address of a server, with the name it was reached by (for TLS and for people).
public struct ServerEndpoint: Sendable, Hashable, CustomStringConvertible {
    public let host: String
    public let address: SocketAddress
    public let transport: TURNTransport

    public init(host: String, address: SocketAddress, transport: TURNTransport) {
        self.host = host
        self.address = address
        self.transport = transport
    }

    public var description: String { "\(transport.rawValue)://\(address)" }

    /// True when `host` is an IP literal, which must not be sent as TLS SNI.
    public var hostIsIPLiteral: Bool {
        (try? SocketAddress(ipAddress: host, port: 0)) != nil
    }
}

/// TLS settings for `turns:` servers.
public struct TLSOptions: Sendable, Hashable {
    /// A PEM file of extra trusted CAs; nil uses the system trust store.
    public var caFile: String?
    /// Skip certificate verification. Only for diagnosing; the probe warns loudly.
    public var insecure: Bool

    public init(caFile: String? = nil, insecure: Bool = false) {
        self.caFile = caFile
        self.insecure = insecure
    }
}
