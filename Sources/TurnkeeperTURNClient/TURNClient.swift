import NIOCore
import Synchronization
public import TurnkeeperSTUN

/// The long-term credential a TURN server checks: for TURN REST, `<expiry>:<user>` and its HMAC.
public struct TURNCredentials: Sendable, Hashable {
    public let username: String
    public let password: String

    public init(username: String, password: String) {
        self.username = username
        self.password = password
    }
}

/// A relay the server allocated.
public struct Allocation: Sendable, Hashable {
    public let relayed: TransportAddress
    /// Our address as the server sees it (server-reflexive).
    public let mapped: TransportAddress?
    public let lifetime: UInt32
}

/// TURN operations (RFC 8656) over one ``STUNConnection``, with the long-term credential exchange:
/// an unauthenticated request draws 401 with REALM and NONCE; the retry carries USERNAME, REALM,
/// NONCE and MESSAGE-INTEGRITY; a 438 (stale nonce) is retried with the new nonce, a few times at most (a loaded
/// client can be slow enough for the new nonce to go stale too).
public final class TURNClient: Sendable {
    public let connection: STUNConnection
    private let credentials: TURNCredentials?
    private let auth = Mutex<AuthState?>(nil)
    /// How often one request is retried after a 438: bounded, so a server that keeps answering 438 ends it.
    static let maximumStaleNonceRetries = 3
    private let staleNonces = Atomic<Int>(0)

    private struct AuthState: Sendable {
        var realm: String
        var nonce: String
        var key: STUNIntegrityKey
    }

    public init(connection: STUNConnection, credentials: TURNCredentials?) {
        self.connection = connection
        self.credentials = credentials
    }

    /// How many times the server declared our nonce stale (438) and we retried with its new one.
    public var staleNonceRetries: Int { staleNonces.load(ordering: .relaxed) }

    /// The realm the server named in its 401, once known.
    public var realm: String? { auth.withLock { $0?.realm } }

    /// A Binding request: our server-reflexive address.
    public func binding(deadline: ContinuousClock.Instant) async throws -> TransportAddress {
        let request = STUNMessage(STUNMessageType(.binding, .request))
        let response = try await connection.request(request, integrity: nil, deadline: deadline)
        let message = response.message
        guard message.type.messageClass == .successResponse else {
            let error = (try? message.errorCode()) ?? STUNErrorCode(code: 0, reason: "without ERROR-CODE")
            throw TURNClientError(.errorResponse(error), method: .binding)
        }
        let mapped: TransportAddress?
        do throws(STUNDecodingError) {
            // `??` would erase the typed throw, so the fallback is spelled out.
            if let xored = try message.xorAddress(.xorMappedAddress) {
                mapped = xored
            } else {
                mapped = try message.plainAddress(.mappedAddress)
            }
        } catch {
            throw TURNClientError(.malformedResponse(error.description), method: .binding)
        }
        if let mapped { return mapped }
        throw TURNClientError(.malformedResponse("no XOR-MAPPED-ADDRESS or MAPPED-ADDRESS"), method: .binding)
    }

    /// Allocates a UDP relay of `family`. An IPv4 relay is asked for by name (REQUESTED-ADDRESS-FAMILY) only with
    /// `naming`: a server that has it as its default may not know the attribute (RFC 6156).
    public func allocate(family: TransportAddress.Family, deadline: ContinuousClock.Instant, naming: Bool = false)
        async throws -> Allocation
    {
        let response = try await authenticated(.allocate, deadline: deadline) { message in
            message.appendRequestedTransport(.udp)
            if family == .ipv6 || naming { message.appendRequestedAddressFamily(family) }
        }
        do {
            guard let relayed = try response.message.xorAddress(.xorRelayedAddress) else {
                throw TURNClientError(.malformedResponse("no XOR-RELAYED-ADDRESS"), method: .allocate)
            }
            // A family asked for by name and another granted: RFC 6156 says 440 then, so this is not the relay
            // the caller can use.
            if family == .ipv6 || naming, relayed.family != family {
                throw TURNClientError(
                    .protocolViolation(
                        "asked for an \(family == .ipv4 ? "IPv4" : "IPv6") relay and was given \(relayed)"),
                    method: .allocate)
            }
            return Allocation(
                relayed: relayed,
                mapped: try response.message.xorAddress(.xorMappedAddress),
                lifetime: try response.message.lifetime() ?? 0
            )
        } catch let error as STUNDecodingError {
            throw TURNClientError(.malformedResponse(error.description), method: .allocate)
        }
    }

    /// Refreshes the allocation; `lifetime` 0 releases it. Returns the lifetime granted.
    @discardableResult
    public func refresh(lifetime: UInt32, deadline: ContinuousClock.Instant) async throws -> UInt32 {
        let response = try await authenticated(.refresh, deadline: deadline) { $0.appendLifetime(lifetime) }
        return (try? response.message.lifetime()) ?? lifetime
    }

    public func createPermission(for peers: [TransportAddress], deadline: ContinuousClock.Instant) async throws {
        _ = try await authenticated(.createPermission, deadline: deadline) { message in
            for peer in peers { message.appendXorAddress(.xorPeerAddress, peer) }
        }
    }

    public func channelBind(_ channel: UInt16, to peer: TransportAddress, deadline: ContinuousClock.Instant)
        async throws
    {
        _ = try await authenticated(.channelBind, deadline: deadline) { message in
            message.appendChannelNumber(channel)
            message.appendXorAddress(.xorPeerAddress, peer)
        }
    }

    /// A Send indication: `data` to `peer` through the relay.
    public func send(_ data: [UInt8], to peer: TransportAddress) async throws {
        var message = STUNMessage(STUNMessageType(.send, .indication))
        message.appendXorAddress(.xorPeerAddress, peer)
        message.append(.data, data)
        try await connection.send(message.encoded())
    }

    /// ChannelData on a bound channel; padded on streams as RFC 8656 §12.5 requires.
    public func send(_ data: [UInt8], channel: UInt16) async throws {
        try await connection.send(ChannelData(channel: channel, data: data).encoded(padded: connection.isReliable))
    }

    // MARK: The credential exchange

    /// Error codes a server sends when it has not authenticated a request, so it cannot sign them:
    /// 401 and 438 (the challenge), 400 (attributes it refuses before checking them, and pion's answer to a
    /// wrong password), 437 and 441 (credentials other than those of the allocation). coturn signs every
    /// other answer to a request whose MESSAGE-INTEGRITY it verified.
    static let answeredUnauthenticated: Set<Int> = [
        STUNErrorCode.badRequest, STUNErrorCode.unauthorized, STUNErrorCode.allocationMismatch,
        STUNErrorCode.staleNonce, STUNErrorCode.wrongCredentials,
    ]

    private func authenticated(
        _ method: STUNMethod,
        deadline: ContinuousClock.Instant,
        attributes: (inout STUNMessage) -> Void
    ) async throws -> DecodedSTUNMessage {
        var staleRetries = 0
        var challenged = false
        while true {
            var message = STUNMessage(STUNMessageType(method, .request))
            attributes(&message)
            let state = auth.withLock { $0 }
            if let state, let credentials {
                message.appendText(.username, credentials.username)
                message.appendText(.realm, state.realm)
                message.appendText(.nonce, state.nonce)
            }
            let response = try await connection.request(message, integrity: state?.key, deadline: deadline)
            let reply = response.message
            // Once the request is signed, the answer must be too (RFC 8489 §9.2.5): anyone on the path could
            // otherwise grant an allocation, or anything else, in the server's name.
            let integrity = state.map { response.verifyIntegrity($0.key) }
            if reply.type.messageClass == .successResponse {
                switch integrity {
                case .absent?:
                    throw TURNClientError(.answerIntegrityMissing(nil), method: method, answerIntegrity: .absent)
                case .invalid?:
                    throw TURNClientError(.answerIntegrityInvalid(nil), method: method, answerIntegrity: .invalid)
                case .valid?, nil:
                    return response
                }
            }
            let error: STUNErrorCode
            do {
                error = try reply.errorCode() ?? STUNErrorCode(code: 0, reason: "error response without ERROR-CODE")
            } catch let decoding {
                throw TURNClientError(
                    .malformedResponse(decoding.description), method: method, answerIntegrity: integrity)
            }
            if integrity == .invalid {
                throw TURNClientError(.answerIntegrityInvalid(error), method: method, answerIntegrity: .invalid)
            }
            if integrity == .absent && !Self.answeredUnauthenticated.contains(error.code) {
                throw TURNClientError(.answerIntegrityMissing(error), method: method, answerIntegrity: .absent)
            }
            switch error.code {
            case STUNErrorCode.unauthorized where state == nil && !challenged:
                challenged = true
                guard let credentials else { throw TURNClientError(.credentialsRequired, method: method) }
                guard let realm = reply.text(.realm), let nonce = reply.text(.nonce) else {
                    throw TURNClientError(.malformedResponse("401 without REALM and NONCE"), method: method)
                }
                let key = STUNIntegrityKey.longTerm(
                    username: credentials.username, realm: realm, password: credentials.password)
                auth.withLock { $0 = AuthState(realm: realm, nonce: nonce, key: key) }
            case STUNErrorCode.staleNonce where state != nil && staleRetries < Self.maximumStaleNonceRetries:
                staleRetries += 1
                staleNonces.add(1, ordering: .relaxed)
                guard let nonce = reply.text(.nonce), let credentials else {
                    throw TURNClientError(.malformedResponse("438 without NONCE"), method: method)
                }
                let realm = reply.text(.realm) ?? state!.realm
                let key = STUNIntegrityKey.longTerm(
                    username: credentials.username, realm: realm, password: credentials.password)
                auth.withLock { $0 = AuthState(realm: realm, nonce: nonce, key: key) }
            case STUNErrorCode.unauthorized, STUNErrorCode.wrongCredentials:
                throw TURNClientError(.credentialsRejected(error), method: method, answerIntegrity: integrity)
            default:
                throw TURNClientError(.errorResponse(error), method: method, answerIntegrity: integrity)
            }
        }
    }
}

// MARK: One allocation, released at once

/// What a server said to ``TURNClient/allocateAndRelease(at:credentials:timeout:attempts:)``.
public enum AllocationVerdict: Sendable, Hashable {
    /// It granted the allocation (which was released at once).
    case granted
    /// It refused the credentials (401, or 441 Wrong Credentials), with what it answered.
    case refused(TURNClientError)
}

extension TURNClient {
    /// One allocation at `uri` with `credentials`, released at once: "does this server accept these
    /// credentials right now?", asked the way a client asks it. Anything but a grant or a refusal of the
    /// credentials (no answer, another error) is thrown: it proves nothing either way.
    ///
    /// A server keeps a released allocation's 5-tuple for a while and answers 437 (Allocation Mismatch) to a
    /// new one that draws the same local port; each further attempt, on a new socket, draws another port.
    public static func allocateAndRelease(
        at uri: TURNURI, credentials: TURNCredentials, timeout: Duration = .seconds(10), attempts: Int = 3
    ) async throws -> AllocationVerdict {
        let endpoint = try await uri.endpoint()
        for attempt in 1...max(1, attempts) {
            do {
                try await Connector.withConnection(to: endpoint, connectTimeout: timeout) { connection in
                    let client = TURNClient(connection: connection, credentials: credentials)
                    do {
                        _ = try await client.allocate(
                            family: endpoint.address.protocol == .inet6 ? .ipv6 : .ipv4, deadline: .now + timeout)
                    } catch let error as TURNClientError
                        where error.errorCode == STUNErrorCode.addressFamilyNotSupported
                    {
                        // An IPv6 listener with IPv4 relays only: an IPv4 relay proves the secret as well.
                        _ = try await client.allocate(family: .ipv4, deadline: .now + timeout, naming: true)
                    }
                    try await client.refresh(lifetime: 0, deadline: .now + timeout)
                }
                return .granted
            } catch let error as TURNClientError {
                if case .credentialsRejected = error.kind { return .refused(error) }
                if case .errorResponse(let code) = error.kind, code.code == STUNErrorCode.allocationMismatch,
                    attempt < attempts
                {
                    continue
                }
                throw error
            }
        }
        throw TURNClientError(.timedOut, method: .allocate)  // not reached: the last attempt returns or throws
    }
}
