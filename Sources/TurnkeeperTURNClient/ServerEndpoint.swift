public import NIOCore

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

extension SocketAddress {
    /// `127.0.0.1:3478` or `[::1]:3478`, the way people write addresses (and the probe's reports do).
    public var hostAndPort: String {
        let host = ipAddress ?? "?"
        let port = self.port.map(String.init) ?? "?"
        return self.protocol == .inet6 ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// The inverse of ``hostAndPort``, for numeric addresses only.
    public init(hostAndPort text: String) throws {
        let host: Substring
        let port: Substring
        if text.hasPrefix("["), let close = text.firstIndex(of: "]"), text[close...].hasPrefix("]:") {
            host = text[text.index(after: text.startIndex)..<close]
            port = text[close...].dropFirst(2)
        } else if let colon = text.firstIndex(of: ":"), colon == text.lastIndex(of: ":") {
            // More than one colon is an IPv6 address without brackets, whose port cannot be told apart.
            host = text[..<colon]
            port = text[text.index(after: colon)...]
        } else {
            throw TURNClientError(.malformedResponse("\(text) is not HOST:PORT or [IPv6]:PORT"))
        }
        guard let number = Int(port), (0...65535).contains(number) else {
            throw TURNClientError(.malformedResponse("\(text) has no port of 0-65535"))
        }
        try self.init(ipAddress: String(host), port: number)
    }
}

extension TimeAmount {
    /// The same span in NIO's terms, to the nanosecond.
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
