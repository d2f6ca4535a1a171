import Foundation
import NIOCore
import TestSupport
import Testing
import TurnkeeperCredentials
import TurnkeeperSTUN
import TurnkeeperTURNClient

@Suite("TURN client", .mayBlock, .tags(.live))
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
        // At least the third copy was needed; on a loaded machine its answer can arrive after a fourth left.
        #expect(server.received.load(ordering: .relaxed) >= 3)
    }

    @Test("A stale nonce (438) is answered by a retry with the new nonce, over and over, without failing")
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

    /// The hostile servers answer at once; a deadline only stops a hung test. Generous, so that a machine busy
    /// with other work (two CPU hogs beside the suite timed out at 10 s) never decides a result.
    private static let hangGuard = Duration.seconds(120)

    private static let hostileCredentials = TURNCredentials(
        username: "\(Int(Date().timeIntervalSince1970) + 600):@a:b", password: HostileServer.password)

    private func expectFailure(
        _ behaviour: HostileServer.Behaviour, transport: TURNTransport,
        _ body: @escaping @Sendable (TURNClient) async throws -> Void,
        matches: @escaping @Sendable (TURNClientError) -> Bool
    ) async throws {
        let server = try HostileServer(behaviour)
        defer { server.stop() }
        await #expect {
            try await Connector.withConnection(to: try endpoint(server.port, transport)) { connection in
                try await body(TURNClient(connection: connection, credentials: Self.hostileCredentials))
            }
        } throws: { error in
            guard let error = error as? TURNClientError else { return false }
            return matches(error)
        }
    }

    @Test(
        "An Allocate success that is unsigned, or signed with another key, is refused as unauthenticated",
        arguments: [TURNTransport.udp, .tcp]
    )
    func unauthenticatedAllocation(transport: TURNTransport) async throws {
        try await expectFailure(.unsignedAllocation, transport: transport) {
            _ = try await $0.allocate(family: .ipv4, deadline: .now + Self.hangGuard)
        } matches: {
            $0.kind == .answerIntegrityMissing(nil) && $0.method == .allocate && $0.answerIntegrity == .absent
        }
        try await expectFailure(.forgedAllocation, transport: transport) {
            _ = try await $0.allocate(family: .ipv4, deadline: .now + Self.hangGuard)
        } matches: {
            $0.kind == .answerIntegrityInvalid(nil) && $0.answerIntegrity == .invalid
        }
    }

    @Test("Refresh, CreatePermission and ChannelBind successes must be signed too, once the Allocate was")
    func unauthenticatedLaterAnswers() async throws {
        let server = try HostileServer(.unsignedAfterAllocation)
        defer { server.stop() }
        let peer = TransportAddress(ipv4: "127.0.0.1", port: 9)!
        let failures = try await Connector.withConnection(to: try endpoint(server.port, .tcp)) { connection in
            let client = TURNClient(connection: connection, credentials: Self.hostileCredentials)
            // The server signs this one correctly, so it passes.
            _ = try await client.allocate(family: .ipv4, deadline: .now + Self.hangGuard)
            var failures: [TURNClientError] = []
            let requests: [@Sendable () async throws -> Void] = [
                { try await client.refresh(lifetime: 600, deadline: .now + Self.hangGuard) },
                { try await client.createPermission(for: [peer], deadline: .now + Self.hangGuard) },
                { try await client.channelBind(0x4000, to: peer, deadline: .now + Self.hangGuard) },
            ]
            for request in requests {
                do {
                    try await request()
                } catch let error as TURNClientError {
                    failures.append(error)
                }
            }
            return failures
        }
        #expect(failures.map(\.method) == [.refresh, .createPermission, .channelBind])
        #expect(failures.allSatisfy { $0.kind == .answerIntegrityMissing(nil) }, "\(failures.map(\.kind))")
    }

    @Test("pion's unsigned 400 to the signed Allocate is an error response whose answer was not signed")
    func unsignedBadRequest() async throws {
        try await expectFailure(.badRequestToCredentials, transport: .udp) {
            _ = try await $0.allocate(family: .ipv4, deadline: .now + Self.hangGuard)
        } matches: {
            if case .errorResponse(let code) = $0.kind { return code.code == 400 && $0.answerIntegrity == .absent }
            return false
        }
    }

    @Test("A hostile reason phrase is escaped and bounded wherever the error is printed")
    func hostileReason() async throws {
        try await expectFailure(.hostileText, transport: .udp) {
            _ = try await $0.binding(deadline: .now + Self.hangGuard)
        } matches: { error in
            let text = error.description
            return text.hasPrefix("Binding: error response 500 \\r\\x1b[2K")
                && text.unicodeScalars.allSatisfy {
                    $0.value >= 0x20 && $0.value != 0x7F && !(0x80..<0xA0).contains($0.value)
                }
                && !text.contains("\u{202E}") && !text.contains("\u{2028}")
        }
    }

    @Test(
        "coturn's username limit, measured: 512 bytes allocate, 513 are refused; so are \"union\" with \"select\""
    )
    func coturnUsernameLimit() async throws {
        let secret = try TurnSecret.generate()
        let text = secret.withExposedBytes { String(decoding: $0, as: UTF8.self) }
        let server = try CoturnServer(secrets: [text])
        defer { server.stop() }
        let minter = try CredentialMinter(secret: secret)
        let expiry = Int64(Date().timeIntervalSince1970) + 600
        func allocate(user: String) async throws {
            let credential = minter.credential(user: user, expiry: expiry)
            let credentials = TURNCredentials(username: credential.username, password: credential.password)
            try await Connector.withConnection(to: try endpoint(server.port)) { connection in
                let client = TURNClient(connection: connection, credentials: credentials)
                _ = try await client.allocate(family: .ipv4, deadline: .now + .seconds(15))
                try await client.refresh(lifetime: 0, deadline: .now + .seconds(15))
            }
        }
        let longest = "@" + String(repeating: "u", count: RESTUsername.maximumUserBytes - "@:b".utf8.count) + ":b"
        #expect(longest.utf8.count == RESTUsername.maximumUserBytes)
        #expect("\(expiry):\(longest)".utf8.count == RESTUsername.maximumUsernameBytes)
        try await allocate(user: longest)
        await #expect {
            try await allocate(user: longest + "x")
        } throws: { error in
            guard let error = error as? TURNClientError, case .credentialsRejected(let code) = error.kind else {
                return false
            }
            return code.code == 401
        }
        // coturn's guard against SQL injection: both words anywhere, in any case.
        await #expect {
            try await allocate(user: "@Union.SeLect:b")
        } throws: { error in
            guard let error = error as? TURNClientError, case .errorResponse(let code) = error.kind else {
                return false
            }
            return code.code == 400
        }
        try await allocate(user: "@union:b")
        #expect(RESTUsername.problem(username: "\(expiry):@Union.SeLect:b") != nil)
        #expect(RESTUsername.problem(username: "\(expiry):\(longest)x") != nil)
        #expect(RESTUsername.problem(username: "\(expiry):\(longest)") == nil)
    }
}

@Suite("Connecting by URI, one allocation released at once, unconnected sockets", .tags(.live), .mayBlock)
struct TURNURIConnectionTests {
    @Test("allocateAndRelease: granted with the server's secret, refused (401) with another, over UDP and TCP")
    func allocateAndRelease() async throws {
        let secret = try TurnSecret.generate()
        let server = try CoturnServer(secrets: [secret.withExposedBytes { String(decoding: $0, as: UTF8.self) }])
        defer { server.stop() }
        for transport in ["udp", "tcp"] {
            let uri = try TURNURI("turn:127.0.0.1:\(server.port)?transport=\(transport)")
            for (candidate, granted) in [(secret, true), (try TurnSecret.generate(), false)] {
                let credential = try CredentialMinter(secret: candidate)
                    .credential(user: "@a:b", expiry: Int64(Date().timeIntervalSince1970) + 600)
                let verdict = try await TURNClient.allocateAndRelease(
                    at: uri, credentials: TURNCredentials(username: credential.username, password: credential.password),
                    timeout: .seconds(15))
                switch verdict {
                case .granted:
                    #expect(granted, "\(uri): a secret coturn does not hold was granted")
                case .refused(let error):
                    #expect(!granted, "\(uri): coturn's own secret was refused: \(error)")
                    guard case .credentialsRejected(let code) = error.kind else {
                        Issue.record("\(uri): refused with \(error), not a credential rejection")
                        continue
                    }
                    #expect(code.code == 401)
                }
            }
        }
    }

    @Test("A URI whose host does not resolve fails to connect with the resolver's reason")
    func unresolvable() async throws {
        let uri = try TURNURI("turn:no-such-host.invalid:3478")
        await #expect {
            try await Connector.withConnection(to: uri) { _ in }
        } throws: { error in
            "\(error)".contains("cannot resolve no-such-host.invalid")
        }
    }

    @Test("An unconnected socket: STUN transactions with its server and another address; the rest is received")
    func unconnectedSocket() async throws {
        let server = try HostileServer(.dropFirstTwo)
        defer { server.stop() }
        let other = try CoturnServer(secrets: [
            try TurnSecret.generate().withExposedBytes { String(decoding: $0, as: UTF8.self) }
        ])
        defer { other.stop() }
        let echo = try TurnPeer()
        defer { echo.stop() }
        let endpoint = ServerEndpoint(
            host: "127.0.0.1", address: try SocketAddress(ipAddress: "127.0.0.1", port: Int(server.port)),
            transport: .udp)
        try await DatagramSocket.withSocket(server: endpoint) { socket in
            let mapped = try await TURNClient(connection: socket.stun, credentials: nil)
                .binding(deadline: .now + .seconds(15))
            #expect(mapped.description == "127.0.0.1:1")
            // At least the third copy was needed; a fourth can leave before the third's answer arrives.
            #expect(server.received.load(ordering: .relaxed) >= 3)

            let answer = try await socket.request(
                STUNMessage(STUNMessageType(.binding, .request)),
                to: try SocketAddress(ipAddress: "127.0.0.1", port: Int(other.port)), deadline: .now + .seconds(15))
            #expect(answer.message.type.messageClass == .successResponse)
            let reflexive = try answer.message.xorAddress(.xorMappedAddress)
            #expect(reflexive?.port == socket.localAddress?.port.map { UInt16($0) })

            let payload = Array("not STUN, media".utf8)
            try await socket.send(payload, to: try SocketAddress(ipAddress: "127.0.0.1", port: Int(echo.port)))
            let arrived = await withTaskGroup(of: [UInt8]?.self) { group in
                group.addTask {
                    for await datagram in socket.received { return datagram.bytes }
                    return nil
                }
                group.addTask {
                    try? await Task.sleep(for: .seconds(15))
                    return nil
                }
                let first = await group.next() ?? nil
                group.cancelAll()
                return first
            }
            #expect(arrived == payload, "the echo did not arrive as a received datagram within 15 s")
        }
    }
}
