import NIOCore
import TurnkeeperSTUN
import TurnkeeperTURNClient

/// One allocation on a loopback TURN server with the given credential, released at once: the question
/// "does coturn accept this credential right now?" asked the way a client asks it.
public enum TURNAllocation {
    /// True when the server granted the allocation; false when it rejected the credentials. Any other
    /// failure (timeout, refused) is thrown, so a broken test setup is never read as a refusal.
    public static func succeeds(
        port: UInt16,
        transport: TURNTransport = .udp,
        username: String,
        password: String
    ) async throws -> Bool {
        // coturn keeps a released allocation's 5-tuple for a while, and answers 437 to a new socket that
        // happens to draw the same local port; a new socket draws another port, so a retry settles it.
        for _ in 1..<3 {
            do {
                return try await attempt(port: port, transport: transport, username: username, password: password)
            } catch let error as TURNClientError {
                guard case .errorResponse(let code) = error.kind, code.code == STUNErrorCode.allocationMismatch
                else { throw error }
            }
        }
        return try await attempt(port: port, transport: transport, username: username, password: password)
    }

    private static func attempt(
        port: UInt16, transport: TURNTransport, username: String, password: String
    ) async throws -> Bool {
        let endpoint = ServerEndpoint(
            host: "127.0.0.1",
            address: try SocketAddress(ipAddress: "127.0.0.1", port: Int(port)),
            transport: transport
        )
        do {
            try await Connector.withConnection(to: endpoint) { connection in
                let client = TURNClient(
                    connection: connection, credentials: TURNCredentials(username: username, password: password))
                _ = try await client.allocate(family: .ipv4, deadline: .now + .seconds(15))
                try await client.refresh(lifetime: 0, deadline: .now + .seconds(15))
            }
            return true
        } catch let error as TURNClientError {
            if case .credentialsRejected = error.kind { return false }
            throw error
        }
    }
}
