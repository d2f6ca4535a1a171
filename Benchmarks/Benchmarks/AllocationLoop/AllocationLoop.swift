import Foundation
import TurnkeeperCredentials
import TurnkeeperTURNClient

/// What `turnutils_uclient -Y alloc` does a time: a new UDP socket, an Allocate (challenged, then signed), a
/// Refresh of 0, closed. Shared by the benchmark (wall clock, mallocs) and `AllocationCost` (CPU and system
/// calls an allocation, the figures set beside uclient's).
public struct AllocationLoop: Sendable {
    let endpoint: ServerEndpoint
    let credentials: TURNCredentials

    /// Against coturn on 127.0.0.1:`port`, with a credential minted from the secret in `secretFile`.
    public init(port: Int, secretFile: String) async throws {
        let secret = try SecretFile.read(secretFile).secret
        // coturn refuses expiries past 2038 (signed 32-bit), so a plain hour from now.
        let expiry = Int64(Date().timeIntervalSince1970) + 3600
        let minted = try CredentialMinter(secret: secret).credential(user: "@bench:localhost", expiry: expiry)
        credentials = TURNCredentials(username: minted.username, password: minted.password)
        endpoint = try await TURNURI("turn:127.0.0.1:\(port)?transport=udp").endpoint()
    }

    /// One allocation, made and released; returns how many times it was retried. A 437 (coturn still holding
    /// a reused local port's 5-tuple, which thousands of allocations a second meet, sometimes twice running)
    /// is tried again from a new socket, up to 4 times.
    public func once() async throws -> Int {
        var retries = 0
        while true {
            do {
                try await Connector.withConnection(to: endpoint) { connection in
                    let client = TURNClient(connection: connection, credentials: credentials)
                    let deadline = ContinuousClock.now + .seconds(5)
                    _ = try await client.allocate(family: .ipv4, deadline: deadline)
                    try await client.refresh(lifetime: 0, deadline: deadline)
                }
                return retries
            } catch let error as TURNClientError where retries < 4 && error.errorCode == 437 {
                retries += 1
            }
        }
    }
}
