public import TurnkeeperTURNClient

/// A STUN or TURN URI (RFC 7064, RFC 7065): `stun:host[:port]`, `turn:host[:port][?transport=udp|tcp]`,
/// `turns:host[:port][?transport=tcp]`. IPv6 literals go in brackets.
public struct TURNURI: Sendable, Hashable, CustomStringConvertible {
    public enum Scheme: String, Sendable {
        case stun
        case stuns
        case turn
        case turns
    }

    public let scheme: Scheme
    public let host: String
    public let port: Int
    public let transport: TURNTransport
    /// The text it was parsed from.
    public let text: String

    /// True for TURN URIs, which allocate relays; STUN URIs only do Binding.
    public var isTURN: Bool { scheme == .turn || scheme == .turns }

    public var description: String { text }

    public init(_ text: String) throws(ProbeError) {
        func bad(_ why: String) -> ProbeError {
            ProbeError(
                "\"\(text)\" is not a STUN/TURN URI: \(why). "
                    + "Write stun:HOST[:PORT], turn:HOST[:PORT][?transport=udp|tcp] or turns:HOST[:PORT]."
            )
        }
        guard let colon = text.firstIndex(of: ":"), let scheme = Scheme(rawValue: text[..<colon].lowercased()) else {
            throw bad("it must start with stun:, stuns:, turn: or turns:")
        }
        var rest = Substring(text[text.index(after: colon)...])
        var transportParameter: String?
        if let question = rest.firstIndex(of: "?") {
            let query = rest[rest.index(after: question)...]
            rest = rest[..<question]
            guard query.hasPrefix("transport="), scheme == .turn || scheme == .turns else {
                throw bad("the only query it may carry is ?transport=, and only on turn: and turns:")
            }
            transportParameter = query.dropFirst("transport=".count).lowercased()
        }
        guard !rest.hasPrefix("//") else { throw bad("it has no \"//\" after the scheme") }
        var host: Substring
        var portText: Substring?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw bad("an IPv6 address is missing its \"]\"") }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw bad("unexpected text after the IPv6 address") }
                portText = after.dropFirst()
            }
        } else if let portColon = rest.lastIndex(of: ":") {
            host = rest[..<portColon]
            portText = rest[rest.index(after: portColon)...]
        } else {
            host = rest
        }
        guard !host.isEmpty, host.allSatisfy({ $0.isLetter || $0.isNumber || ".-_:".contains($0) }) else {
            throw bad("the host is empty or holds characters a host name cannot")
        }
        let secure = scheme == .stuns || scheme == .turns
        var port = secure ? 5349 : 3478
        if let portText {
            guard let value = Int(portText), (1...65535).contains(value) else { throw bad("the port is not 1-65535") }
            port = value
        }
        let transport: TURNTransport
        switch (secure, transportParameter) {
        case (false, nil), (false, "udp"): transport = .udp
        case (false, "tcp"): transport = .tcp
        case (true, nil), (true, "tcp"): transport = .tls
        case (true, "udp"): throw bad("DTLS (turns: over UDP) is not supported; use ?transport=tcp")
        default: throw bad("transport must be udp or tcp")
        }
        self.scheme = scheme
        self.host = String(host)
        self.port = port
        self.transport = transport
        self.text = text
    }
}

/// A probe configuration problem: a bad URI, a missing credential. Exit status 2.
public struct ProbeError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
