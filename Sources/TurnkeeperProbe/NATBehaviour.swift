public import NIOCore
import TurnkeeperCore
import TurnkeeperSTUN
import TurnkeeperTURNClient

/// What kind of NAT this host is behind, found as RFC 5780 describes (like `turnutils_natdiscovery`). It
/// needs a STUN server with a second address, which names it in OTHER-ADDRESS.
public struct NATBehaviour: Sendable, Codable, Equatable {
    public enum Kind: String, Sendable, Codable {
        case endpointIndependent = "endpoint-independent"
        case addressDependent = "address-dependent"
        case addressAndPortDependent = "address-and-port-dependent"
    }

    /// Whether our address and port as the server sees them differ from our own: a NAT is in between.
    public var behindNAT: Bool
    /// nil when the tests could not tell: see ``undetermined``.
    public var mapping: Kind?
    public var filtering: Kind?
    /// What RFC 5780 could not tell against this server, and why (a server with one IP address).
    public var undetermined: String?
    /// The address the server saw: without NAT, whether it is public decides what "no NAT" means.
    public var reflexive: String?

    public init(
        behindNAT: Bool, mapping: Kind?, filtering: Kind?, undetermined: String? = nil, reflexive: String? = nil
    ) {
        self.behindNAT = behindNAT
        self.mapping = mapping
        self.filtering = filtering
        self.undetermined = undetermined
        self.reflexive = reflexive
    }

    /// What it means for calls, in a sentence or two.
    public var summary: String {
        guard behindNAT else {
            guard let reflexive, let address = try? SocketAddress(hostAndPort: reflexive),
                let seen = try? TransportAddress(address)
            else {
                return "No NAT between this host and the STUN server (the address it saw is not known)."
            }
            if seen.isLoopback {
                return "No NAT between this host and the STUN server: both are on loopback (\(seen.host)), which "
                    + "says nothing about the path from the Internet. Probe a public address of the server."
            }
            if seen.isPrivate {
                return "No NAT between this host and the STUN server, but this host's address (\(seen.host)) is "
                    + "private: peers on the Internet cannot reach it, and the NAT to the Internet is not on this "
                    + "path. Probe a STUN server on the Internet side to classify it."
            }
            return "No NAT: this host's address (\(seen.host)) is public; calls need TURN only for the other side."
        }
        let mappingText = mapping?.rawValue ?? "endpoint-independent or address-dependent"
        let filteringText = filtering?.rawValue ?? "endpoint-independent or address-dependent"
        let kind: String
        switch (mapping, filtering) {
        case (.endpointIndependent, .endpointIndependent): kind = "a full-cone NAT"
        case (.endpointIndependent, .addressDependent): kind = "a restricted-cone NAT"
        case (.endpointIndependent, .addressAndPortDependent): kind = "a port-restricted-cone NAT"
        case (.addressDependent, _), (.addressAndPortDependent, _): kind = "a symmetric NAT"
        default: kind = "a NAT"
        }
        let advice: String
        switch mapping {
        case .endpointIndependent:
            advice = "direct calls can work with peers whose NAT is kind; TURN covers the rest"
        case .addressDependent, .addressAndPortDependent:
            advice = "its mapping changes with every destination, so direct calls fail and every call needs TURN"
        case nil:
            advice =
                "its mapping does not depend on the destination port (whether it depends on the address was not "
                + "tested); TURN covers what direct calls cannot"
        }
        var text = "Behind \(kind) (mapping \(mappingText), filtering \(filteringText)): \(advice)."
        if let undetermined { text += " Not told: \(undetermined)." }
        return text
    }
}

public enum NATDiscovery {
    /// Runs the mapping and filtering tests against the STUN server at `server`. Nil when the server has
    /// no second address (no OTHER-ADDRESS), so RFC 5780 cannot be applied.
    ///
    /// A server with one IP address (coturn with one address per family names its own IP and the next port
    /// in OTHER-ADDRESS, and answers a change of IP from the same IP) can only show whether the mapping and
    /// the filtering depend on the port: the rest is reported as undetermined, never guessed.
    public static func discover(server: SocketAddress, timeout: Duration = .seconds(2)) async throws -> NATBehaviour? {
        let endpoint = ServerEndpoint(host: server.ipAddress ?? "", address: server, transport: .udp)
        let serverIP = try TransportAddress(server)
        struct Mapping: Sendable {
            var behind: Bool
            var kind: NATBehaviour.Kind?
            var reflexive: TransportAddress
            var other: TransportAddress
        }
        // Mapping: the same socket to the server's addresses.
        let found = try await DatagramSocket.withSocket(server: endpoint) { socket -> Mapping? in
            guard let first = try await binding(socket, to: server, timeout: timeout), let other = first.other,
                other.family == serverIP.family
            else { return nil }
            let local = try? socket.localAddress.map(TransportAddress.init)
            let localIP = LocalRoute.sourceAddress(toward: server)
            let behind = localIP != first.mapped.host || (local.map { $0.port != first.mapped.port } ?? false)
            let oneAddress = other.address == serverIP.address
            // Test II: the other IP with the primary port; with one address, the other port.
            let secondTarget = try SocketAddress(
                ipAddress: other.host, port: oneAddress ? Int(other.port) : Int(serverIP.port))
            guard let second = try await binding(socket, to: secondTarget, timeout: timeout) else {
                throw TurnkeeperError(
                    .checkFailed, "the STUN server's other address \(secondTarget.hostAndPort) did not answer")
            }
            if oneAddress {
                let kind: NATBehaviour.Kind? = second.mapped == first.mapped ? nil : .addressAndPortDependent
                return Mapping(behind: behind, kind: kind, reflexive: first.mapped, other: other)
            }
            if second.mapped == first.mapped {
                return Mapping(behind: behind, kind: .endpointIndependent, reflexive: first.mapped, other: other)
            }
            let otherBoth = try SocketAddress(ipAddress: other.host, port: Int(other.port))
            guard let third = try await binding(socket, to: otherBoth, timeout: timeout) else {
                throw TurnkeeperError(
                    .checkFailed, "the STUN server's other address \(otherBoth.hostAndPort) did not answer")
            }
            let kind: NATBehaviour.Kind =
                third.mapped == second.mapped ? .addressDependent : .addressAndPortDependent
            return Mapping(behind: behind, kind: kind, reflexive: first.mapped, other: other)
        }
        guard let found else { return nil }
        // Filtering: a fresh socket, so the mapping tests' packets to the other address opened nothing. An
        // answer counts only from the address the change asked for: one from elsewhere proves nothing.
        let filtering = try await DatagramSocket.withSocket(server: endpoint) {
            socket -> (kind: NATBehaviour.Kind?, ipChanges: Bool) in
            guard try await binding(socket, to: server, timeout: timeout) != nil else {
                throw TurnkeeperError(.checkFailed, "the STUN server at \(server.hostAndPort) stopped answering")
            }
            let both = try await binding(socket, to: server, change: 0x06, timeout: timeout)
            if let from = both?.from, from.address != serverIP.address, from.port != serverIP.port {
                return (.endpointIndependent, true)
            }
            let ipChanges = both == nil && found.other.address != serverIP.address
            let port = try await binding(socket, to: server, change: 0x02, timeout: timeout)
            guard let from = port?.from, from.address == serverIP.address, from.port != serverIP.port else {
                return (.addressAndPortDependent, ipChanges)
            }
            // The port changed and was let through; whether a changed IP would be is known only if the
            // server can change it.
            return (ipChanges ? .addressDependent : nil, ipChanges)
        }
        var undetermined: [String] = []
        if found.kind == nil || filtering.kind == nil {
            undetermined.append(
                found.other.address == serverIP.address
                    ? "the STUN server has one IP address (OTHER-ADDRESS \(found.other) is its own), so whether the "
                        + "NAT depends on the peer's address cannot be tested; a server with two IP addresses (two "
                        + "listening-ip of this family in coturn) tells"
                    : "the STUN server did not answer from its other IP address (OTHER-ADDRESS \(found.other)) when "
                        + "asked to, so whether the NAT depends on the peer's address cannot be tested")
        }
        return NATBehaviour(
            behindNAT: found.behind, mapping: found.kind, filtering: filtering.kind,
            undetermined: undetermined.isEmpty ? nil : undetermined.joined(separator: "; "),
            reflexive: found.reflexive.description)
    }

    struct Answer: Sendable {
        var mapped: TransportAddress
        var other: TransportAddress?
        /// Where the answer came from.
        var from: TransportAddress?
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
        let from: SocketAddress?
        do {
            (response, from) = try await socket.exchange(request, to: server, deadline: .now + timeout)
        } catch let error as TURNClientError where error.kind == .timedOut {
            return nil
        }
        guard response.message.type.messageClass == .successResponse,
            let mapped = try? response.message.xorAddress(.xorMappedAddress)
        else { return nil }
        let other = try? response.message.plainAddress(.otherAddress)
        return Answer(mapped: mapped, other: other ?? nil, from: from.flatMap { try? TransportAddress($0) })
    }
}
