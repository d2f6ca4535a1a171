/// A homeserver's address as users' Matrix apps reach it: `http` or `https`, a host name or address, an
/// optional port and path, and nothing else. It goes into a web page and a Content-Security-Policy header, so
/// nothing that could end a header value or a CSP source (space, `;`, `,`, quotes, a query) is accepted.
public struct HomeserverURL: Sendable, Equatable, CustomStringConvertible {
    /// As written, without a trailing slash.
    public let text: String
    /// `scheme://host[:port]`: what a CSP `connect-src` names.
    public let origin: String

    public init?(_ text: String) {
        let scheme: String
        if text.hasPrefix("https://") {
            scheme = "https://"
        } else if text.hasPrefix("http://") {
            scheme = "http://"
        } else {
            return nil
        }
        guard text.utf8.count <= 512 else { return nil }
        let rest = text.dropFirst(scheme.count)
        let authority = rest.prefix { $0 != "/" }
        let path = rest.dropFirst(authority.count)
        var host = Substring(authority)
        var port: Substring = ""
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = authority[...close]
            port = authority[authority.index(after: close)...]
            let inner = host.dropFirst().dropLast()
            guard !inner.isEmpty, inner.allSatisfy({ ($0.isASCII && $0.isHexDigit) || $0 == ":" || $0 == "." })
            else { return nil }
        } else {
            if let colon = authority.firstIndex(of: ":") {
                host = authority[..<colon]
                port = authority[colon...]
            }
            guard !host.isEmpty, host.utf8.count <= 253, !host.hasPrefix("."), !host.hasPrefix("-"),
                host.allSatisfy({ ($0.isASCII && ($0.isLetter || $0.isNumber)) || $0 == "." || $0 == "-" })
            else { return nil }
        }
        if !port.isEmpty {
            guard port.hasPrefix(":"), let number = Int(port.dropFirst()), (1...65535).contains(number),
                port.dropFirst().allSatisfy({ $0.isASCII && $0.isNumber })
            else { return nil }
        }
        let pathCharacters = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~/")
        guard path.allSatisfy({ pathCharacters.contains($0) }), !path.contains("//"), !path.contains("/.") else {
            return nil
        }
        var trimmed = String(text)
        while trimmed.hasSuffix("/") { trimmed.removeLast() }
        self.text = trimmed
        origin = scheme + host.lowercased() + port
    }

    public var description: String { text }
}
