import NIOCore
import TurnkeeperCore
import TurnkeeperCredentials
import TurnkeeperProbe
import TurnkeeperTURNClient

/// The question "does coturn accept this right now?", asked the way a client asks it: with an allocation.
protocol CoturnProbe: Sendable {
    /// Where it asks (coturn.verify_uri), for messages.
    var uri: String { get }
    /// True when coturn granted an allocation with these credentials (released at once), false when it refused
    /// them (401). Anything else (no answer, another error) is thrown: it proves nothing either way.
    func grants(username: String, password: String) async throws -> Bool
}

extension CoturnProbe {
    /// Whether coturn accepts credentials signed with `secret`, minted as Synapse mints them.
    func accepts(_ secret: TurnSecret, now: Int64) async throws -> Bool {
        let credential = try CredentialMinter(secret: secret).credential(
            user: "@turnkeeper-rotation:localhost", expiry: now + 600)
        return try await grants(username: credential.username, password: credential.password)
    }

    /// Step 3: coturn must grant an allocation with `secret`.
    func verify(_ secret: TurnSecret, now: Int64) async throws {
        guard try await accepts(secret, now: now) else {
            throw TurnkeeperError(
                .verificationFailed, "coturn refused credentials signed with \(secret.fingerprint) (401)")
        }
    }
}

/// A real allocation at a TURN URI, released at once.
struct AllocationProbe: CoturnProbe {
    let uri: String
    var timeout: Duration = .seconds(10)

    func grants(username: String, password: String) async throws -> Bool {
        let credentials = TURNCredentials(username: username, password: password)
        let parsed = try TURNURI(uri)
        guard let address = try await Resolver.resolve(host: parsed.host, port: parsed.port).first else {
            throw TurnkeeperError(.checkFailed, "\(parsed.host) resolves to no address")
        }
        let endpoint = ServerEndpoint(host: parsed.host, address: address, transport: parsed.transport)
        let timeout = timeout
        // coturn keeps a released allocation's 5-tuple for a while and answers 437 to a new one that draws the
        // same local port; another socket draws another port.
        for attempt in 1...3 {
            do {
                try await Connector.withConnection(to: endpoint, connectTimeout: timeout) { connection in
                    let client = TURNClient(connection: connection, credentials: credentials)
                    _ = try await client.allocate(
                        family: address.protocol == .inet6 ? .ipv6 : .ipv4, deadline: .now + timeout)
                    try await client.refresh(lifetime: 0, deadline: .now + timeout)
                }
                return true
            } catch let error as TURNClientError {
                if case .credentialsRejected = error.kind { return false }
                if case .errorResponse(let code) = error.kind, code.code == 437, attempt < 3 { continue }
                throw error
            }
        }
        return false  // not reached: the last attempt returns or throws
    }

    /// "" when coturn accepts every secret of `accepting` and refuses `refusing`, else what it did instead.
    func fileInForce(accepting: [TurnSecret], refusing: TurnSecret?, configFile: String, now: Int64) async throws
        -> String
    {
        for secret in accepting {
            if try await !accepts(secret, now: now) {
                return "refuses \(secret.fingerprint), which \(configFile) holds: it still runs with the previous file"
            }
        }
        if let refusing, try await accepts(refusing, now: now) {
            return "still accepts \(refusing.fingerprint), which \(configFile) no longer holds: it still runs with "
                + "the previous file, or has that secret from another source (a --static-auth-secret flag in "
                + "coturn's unit, a user database)"
        }
        return ""
    }
}
