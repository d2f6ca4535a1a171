// The URI itself is TurnkeeperURI's (pure, no I/O); resolving and connecting to one is the client's.
@_exported public import TurnkeeperURI

// MARK: Connecting

extension TURNURI {
    /// One endpoint for each address the host resolves to, IPv4 first, with this URI's transport (or
    /// `transport`, for a STUN Binding over UDP to a turn:?transport=tcp server, say).
    public func endpoints(transport: TURNTransport? = nil) async throws -> [ServerEndpoint] {
        let addresses = try await Resolver.resolve(host: host, port: port)
        guard !addresses.isEmpty else {
            throw Resolver.ResolutionError(host: host, reason: "no IPv4 or IPv6 address")
        }
        return addresses.map { ServerEndpoint(host: host, address: $0, transport: transport ?? self.transport) }
    }

    /// The first endpoint (IPv4 first): the one a client that tries one address would use.
    public func endpoint(transport: TURNTransport? = nil) async throws -> ServerEndpoint {
        // endpoints() never returns an empty list.
        try await endpoints(transport: transport)[0]
    }
}

extension Connector {
    /// Resolves `uri`, and connects to its first address (IPv4 first) for the duration of `body`.
    public static func withConnection<Result: Sendable>(
        to uri: TURNURI,
        tls: TLSOptions = TLSOptions(),
        connectTimeout: Duration = .seconds(5),
        _ body: (STUNConnection) async throws -> Result
    ) async throws -> Result {
        try await withConnection(to: try await uri.endpoint(), tls: tls, connectTimeout: connectTimeout, body)
    }
}
