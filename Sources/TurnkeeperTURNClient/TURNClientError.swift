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
        /// A response's MESSAGE-INTEGRITY did not verify with our key.
        case integrityMismatch
        /// The server sent bytes on a stream that are neither STUN nor ChannelData.
        case protocolViolation(String)
    }

    public let kind: Kind
    /// The request that failed, when there was one.
    public let method: STUNMethod?

    public init(_ kind: Kind, method: STUNMethod? = nil) {
        self.kind = kind
        self.method = method
    }

    public var description: String {
        let what =
            switch kind {
            case .timedOut: "no answer before the deadline"
            case .connectionRefused: "connection refused"
            case .connectionFailed(let reason): "connection failed: \(reason)"
            case .tlsFailed(let reason): "TLS handshake failed: \(reason)"
            case .closed: "the server closed the connection"
            case .errorResponse(let error): "error response \(error)"
            case .credentialsRejected(let error): "credentials rejected (\(error))"
            case .credentialsRequired: "the server requires credentials and none were given"
            case .malformedResponse(let reason): "malformed response: \(reason)"
            case .integrityMismatch: "the response's MESSAGE-INTEGRITY does not verify"
            case .protocolViolation(let reason): "protocol violation: \(reason)"
            }
        return method.map { "\($0): \(what)" } ?? what
    }
}
