public import NIOCore
import TurnkeeperCore
import TurnkeeperSTUN
import TurnkeeperTURNClient

/// What kind of NAT this host is behind, found as RFC 5780 describes (like `turnutils_natdiscovery`). It
/// needs a STUN server with two addresses, which names the other in OTHER-ADDRESS.
public struct NATBehaviour: Sendable, Codable, Equatable {
    public enum Kind: String, Sendable, Codable {
        case endpointIndependent = "endpoint-independent"
        case addressDependent = "address-dependent"
        case addressAndPortDependent = "address-and-port-dependent"
    }

    /// Whether our address as the server sees it differs from our own: a NAT is in between.
    public var behindNAT: Bool
    public var mapping: Kind
    public var filtering: Kind

    /// What it means for calls, in a sentence.
    public var summary: String {
        guard behindNAT else {
            return "No NAT: this host's address is public; calls need TURN only for the other side."
        }
        let kind: String
        switch (mapping, filtering) {
        case (.endpointIndependent, .endpointIndependent): kind = "a full-cone NAT"
        case (.endpointIndependent, .addressDependent): kind = "a restricted-cone NAT"
        case (.endpointIndependent, .addressAndPortDependent): kind = "a port-restricted-cone NAT"
        default: kind = "a symmetric NAT"
        }
        let advice =
            mapping == .endpointIndependent
            ? "direct calls can work with peers whose NAT is kind; TURN covers the rest"
            : "its mapping changes with every destination, so direct calls fail and every call needs TURN"
        return "Behind \(kind) (mapping \(mapping.rawValue), filtering \(filtering.rawValue)): \(advice)."
    }
}

public enum NATDiscovery {
    /// Runs the mapping and filtering tests against the STUN server at `server`. Nil when the server has
    /// no second address (no OTHER-ADDRESS), so RFC 5780 cannot be applied.
    public static func discover(server: SocketAddress, timeout: Duration = .seconds(2)) async throws -> NATBehaviour? {
        let endpoint = ServerEndpoint(host: server.ipAddress ?? "", address: server, transport: .udp)
        // Mapping: the same socket to three destinations.
        let mapping = try await DatagramSocket.withSocket(server: endpoint) { socket -> (Bool, NATBehaviour.Kind)? in
            guard let first = try await binding(socket, to: server, timeout: timeout),
                let other = first.other,
                let otherHost = try? SocketAddress(ipAddress: other.host, port: server.port ?? 3478)
            else { return nil }
            let local = LocalRoute.sourceAddress(toward: server)
            let behind = local != first.mapped.host
            guard let second = try await binding(socket, to: otherHost, timeout: timeout) else {
                throw TurnkeeperError(
                    .checkFailed, "the STUN server's other address \(otherHost.hostAndPort) did not answer")
            }
            if second.mapped == first.mapped { return (behind, .endpointIndependent) }
            let otherBoth = try SocketAddress(ipAddress: other.host, port: Int(other.port))
            guard let third = try await binding(socket, to: otherBoth, timeout: timeout) else {
                throw TurnkeeperError(
                    .checkFailed, "the STUN server's other address \(otherBoth.hostAndPort) did not answer")
            }
            return (behind, third.mapped == second.mapped ? .addressDependent : .addressAndPortDependent)
        }
        guard let (behind, mappingKind) = mapping else { return nil }
        // Filtering: a fresh socket, so the mapping tests' packets to the other address opened nothing.
        let filtering = try await DatagramSocket.withSocket(server: endpoint) { socket -> NATBehaviour.Kind in
            guard try await binding(socket, to: server, timeout: timeout) != nil else {
                throw TurnkeeperError(.checkFailed, "the STUN server at \(server.hostAndPort) stopped answering")
            }
            if try await binding(socket, to: server, change: 0x06, timeout: timeout) != nil {
                return .endpointIndependent
            }
            if try await binding(socket, to: server, change: 0x02, timeout: timeout) != nil {
                return .addressDependent
            }
            return .addressAndPortDependent
        }
        return NATBehaviour(behindNAT: behind, mapping: mappingKind, filtering: filtering)
    }

    struct Answer: Sendable {
        var mapped: TransportAddress
        var other: TransportAddress?
    }

    /// A Binding (with CHANGE-REQUEST flags when `change` is set) from `socket`, retransmitted as on any
    /// STUN transaction and answered from whichever address the server chooses; nil if no success answers
    /// within `timeout`, which for a change request is itself the answer.
    static func binding(_ socket: DatagramSocket, to server: SocketAddress, change: UInt8? = nil, timeout: Duration)
        async throws -> Answer?
    {
        var request = STUNMessage(STUNMessageType(.binding, .request))
        if let change { request.append(.changeRequest, [0, 0, 0, change]) }
        let response: DecodedSTUNMessage
        do {
            response = try await socket.request(request, to: server, deadline: .now + timeout)
        } catch let error as TURNClientError where error.kind == .timedOut {
            return nil
        }
        guard response.message.type.messageClass == .successResponse,
            let mapped = try? response.message.xorAddress(.xorMappedAddress)
        else { return nil }
        let other = try? response.message.plainAddress(.otherAddress)
        return Answer(mapped: mapped, other: other ?? nil)
    }
}
