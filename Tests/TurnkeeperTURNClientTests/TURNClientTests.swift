import Foundation
import NIOCore
import TestSupport
import Testing
import TurnkeeperCredentials
import TurnkeeperSTUN
import TurnkeeperTURNClient

@Suite("TURN client")
struct TURNClientTests {
    private func endpoint(_ port: UInt16, _ transport: TURNTransport = .udp) throws -> ServerEndpoint {
        ServerEndpoint(
            host: "127.0.0.1", address: try SocketAddress(ipAddress: "127.0.0.1", port: Int(port)), transport: transport
        )
    }

    @Test("UDP requests are retransmitted: a server that drops the first two copies still answers the third")
    func retransmission() async throws {
        let server = try HostileServer(.dropFirstTwo)
        defer { server.stop() }
        let mapped = try await Connector.withConnection(to: try endpoint(server.port)) { connection in
            try await TURNClient(connection: connection, credentials: nil).binding(deadline: .now + .seconds(15))
        }
        #expect(mapped.description == "127.0.0.1:1")
        #expect(server.received.load(ordering: .relaxed) == 3)
    }

    @Test("A stale nonce (438) is answered by one retry with the new nonce, over and over, without failing")
    func staleNonce() async throws {
        let secret = try TurnSecret.generate()
        let text = secret.withExposedBytes { String(decoding: $0, as: UTF8.self) }
        var options = CoturnServer.Options()
        options.extraLines = ["stale-nonce=3"]
        let server = try CoturnServer(secrets: [text], options: options)
        defer { server.stop() }
        let credential = try CredentialMinter(secret: secret)
            .credential(user: "@a:b", expiry: Int64(Date().timeIntervalSince1970) + 600)
        let credentials = TURNCredentials(username: credential.username, password: credential.password)
        let refreshes = try await Connector.withConnection(to: try endpoint(server.port)) { connection in
            let client = TURNClient(connection: connection, credentials: credentials)
            _ = try await client.allocate(family: .ipv4, deadline: .now + .seconds(15))
            // Refresh until coturn has declared the nonce stale twice (each a 438 the client answered),
            // bounded to 20 s; every refresh must succeed.
            let clock = ContinuousClock()
            let end = clock.now + .seconds(20)
            while clock.now < end && client.staleNonceRetries < 2 {
                try await client.refresh(lifetime: 600, deadline: .now + .seconds(15))
                // The nonce lives 3 s; refreshing every second crosses its expiry every few refreshes, with room
                // for a loaded machine between a 438 and its retry.
                try await Task.sleep(for: .seconds(1))
            }
            try await client.refresh(lifetime: 0, deadline: .now + .seconds(15))
            return client.staleNonceRetries
        }
        #expect(refreshes >= 2, "coturn never declared the nonce stale; the test proved nothing")
    }

    @Test("Without credentials an allocation says credentials are required; with wrong ones, rejected")
    func credentialErrors() async throws {
        let server = try CoturnServer(secrets: [
            try TurnSecret.generate().withExposedBytes { String(decoding: $0, as: UTF8.self) }
        ])
        defer { server.stop() }
        for (credentials, expected) in [
            (nil, TURNClientError.Kind.credentialsRequired),
            (TURNCredentials(username: "\(Int(Date().timeIntervalSince1970) + 600):@a:b", password: "wrong"), nil),
        ] as [(TURNCredentials?, TURNClientError.Kind?)] {
            await #expect {
                try await Connector.withConnection(to: try endpoint(server.port, .tcp)) { connection in
                    try await TURNClient(connection: connection, credentials: credentials).allocate(
                        family: .ipv4, deadline: .now + .seconds(15))
                }
            } throws: { error in
                guard let error = error as? TURNClientError else { return false }
                if let expected { return error.kind == expected }
                if case .credentialsRejected(let code) = error.kind { return code.code == 401 }
                return false
            }
        }
    }
}
