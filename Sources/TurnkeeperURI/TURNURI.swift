import Glibc
import TurnkeeperCore

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

    /// DNS limits (RFC 1035): a name of at most 253 characters (255 bytes on the wire), labels of 1-63.
    public static let maximumHostLength = 253
    public static let maximumLabelLength = 63

    public init(_ text: String) throws(TURNURIError) {
        func bad(_ why: String) -> TURNURIError {
            TURNURIError(
                "\"\(ServerText.escaped(text))\" is not a STUN/TURN URI: \(why). "
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
        let host: Substring
        var portText: Substring?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw bad("an IPv6 address is missing its \"]\"") }
            host = rest[rest.index(after: rest.startIndex)..<close]
            guard Self.isIPv6(host) else { throw bad("the text in brackets is not an IPv6 address") }
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw bad("unexpected text after the IPv6 address") }
                portText = after.dropFirst()
            }
        } else {
            // turn:::1 could be [::]:1 or [::1]; only brackets say which.
            guard rest.filter({ $0 == ":" }).count <= 1 else {
                throw bad(
                    "an IPv6 address goes in brackets with the port after them, such as \(scheme.rawValue):[::1]:3478")
            }
            if let portColon = rest.firstIndex(of: ":") {
                host = rest[..<portColon]
                portText = rest[rest.index(after: portColon)...]
            } else {
                host = rest
            }
            if let why = Self.hostNameProblem(host) { throw bad(why) }
        }
        let secure = scheme == .stuns || scheme == .turns
        var port = secure ? 5349 : 3478
        if let portText {
            guard !portText.isEmpty, portText.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(portText),
                (1...65535).contains(value)
            else { throw bad("the port is not 1-65535") }
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

    private static func isIPv6(_ text: Substring) -> Bool {
        var address = in6_addr()
        return inet_pton(AF_INET6, String(text), &address) == 1
    }

    /// Why `host` cannot be a DNS name or IPv4 address, or nil. Names are ASCII (international names in
    /// their xn-- form, as getaddrinfo wants them); `_` is allowed, as resolvers allow it.
    static func hostNameProblem(_ host: Substring) -> String? {
        guard !host.isEmpty else { return "the host is empty" }
        guard host.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }) else {
            return "the host holds characters a host name cannot (write international names in their xn-- form)"
        }
        let name = host.hasSuffix(".") ? host.dropLast() : host
        guard name.count <= maximumHostLength else {
            return "the host name is \(name.count) characters long; DNS allows at most \(maximumHostLength)"
        }
        for label in name.split(separator: ".", omittingEmptySubsequences: false) {
            guard !label.isEmpty else {
                return "the host name has an empty label (two dots in a row, or a leading dot)"
            }
            guard label.count <= maximumLabelLength else {
                return "a label of the host name is \(label.count) characters long; DNS allows at most "
                    + "\(maximumLabelLength) between dots"
            }
        }
        return nil
    }
}

/// Why a text is not a ``TURNURI``: the text (escaped), what is wrong, and the forms that work.
public struct TURNURIError: Error, Sendable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// How to reach a STUN/TURN server: TURN over UDP, TCP, or TLS over TCP.
public enum TURNTransport: String, Sendable, Hashable, CaseIterable {
    case udp
    case tcp
    case tls
}
