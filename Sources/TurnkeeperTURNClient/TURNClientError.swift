import TurnkeeperCore
public import TurnkeeperSTUN

/// What went wrong talking to a STUN/TURN server, as facts for the probe to diagnose.
public struct TURNClientError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// Nothing came back before the deadline.
        case timedOut
        /// The server's host actively refused the connection (nothing listens there).
        case connectionRefused
        /// The connection could not be made for another reason.
        case connectionFailed(String)
        /// Over UDP, the network answered with an ICMP error other than port unreachable: a firewall that rejects
        /// with host- or admin-prohibited (firewalld's default), or a host the network says is unknown.
        case rejectedByNetwork
        /// The TLS handshake failed: certificate, name, version or cipher.
        case tlsFailed(String)
        /// The server closed the connection.
        case closed
        /// The server answered with an error that retrying with credentials cannot fix.
        case errorResponse(STUNErrorCode)
        /// The server refused the credentials we sent (401 after sending them).
        case credentialsRejected(STUNErrorCode)
        /// The server wants credentials and none were given.
        case credentialsRequired
        /// A response arrived but lacked something it must carry, or carried it malformed.
        case malformedResponse(String)
        /// A response to a request that carried our MESSAGE-INTEGRITY came without one, so nothing says
        /// the server sent it. The error code, when it was an error response.
        case answerIntegrityMissing(STUNErrorCode?)
        /// A response to a request that carried our MESSAGE-INTEGRITY carried one that does not verify.
        case answerIntegrityInvalid(STUNErrorCode?)
        /// The server sent bytes on a stream that are neither STUN nor ChannelData.
        case protocolViolation(String)
    }

    public let kind: Kind

    /// The server's error code, for an error response.
    public var errorCode: Int? {
        if case .errorResponse(let code) = kind { return code.code }
        return nil
    }

    /// The request that failed, when there was one.
    public let method: STUNMethod?
    /// How the answer's MESSAGE-INTEGRITY checked out, when the request carried ours; nil otherwise.
    public let answerIntegrity: DecodedSTUNMessage.IntegrityCheck?

    public init(
        _ kind: Kind, method: STUNMethod? = nil, answerIntegrity: DecodedSTUNMessage.IntegrityCheck? = nil
    ) {
        self.kind = kind
        self.method = method
        self.answerIntegrity = answerIntegrity
    }

    /// Safe to print: the server's reason phrases are escaped and bounded by ``STUNErrorCode``, and the
    /// other texts (library errors that may quote what a server sent) are escaped here.
    public var description: String {
        let what =
            switch kind {
            case .timedOut: "no answer before the deadline"
            case .connectionRefused: "connection refused"
            case .rejectedByNetwork:
                "rejected by the network (an ICMP error: a firewall's host- or admin-prohibited, or an unknown host)"
            case .connectionFailed(let reason): "connection failed: \(ServerText.escaped(reason, limit: nil))"
            case .tlsFailed(let reason): "TLS handshake failed: \(ServerText.escaped(reason, limit: nil))"
            case .closed: "the server closed the connection"
            case .errorResponse(let error): "error response \(error)"
            case .credentialsRejected(let error): "credentials rejected (\(error))"
            case .credentialsRequired: "the server requires credentials and none were given"
            case .malformedResponse(let reason): "malformed response: \(ServerText.escaped(reason, limit: nil))"
            case .answerIntegrityMissing(let error):
                "the \(Self.answer(error)) carries no MESSAGE-INTEGRITY although the request was signed: "
                    + "it cannot be authenticated"
            case .answerIntegrityInvalid(let error):
                "the \(Self.answer(error))'s MESSAGE-INTEGRITY does not verify with the credentials: "
                    + "it cannot be authenticated"
            case .protocolViolation(let reason): "protocol violation: \(ServerText.escaped(reason, limit: nil))"
            }
        return method.map { "\($0): \(what)" } ?? what
    }

    private static func answer(_ error: STUNErrorCode?) -> String {
        error.map { "error response \($0)" } ?? "success response"
    }
}
