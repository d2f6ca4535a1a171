import Glibc
public import NIOCore
import NIOPosix

/// Name resolution that returns every address, A and AAAA apart, so each can be probed on its own.
public enum Resolver {
    /// All addresses of `host` for `port`, IPv4 first, without duplicates. Runs getaddrinfo on NIO's
    /// thread pool; an empty result or failure throws with getaddrinfo's reason.
    public static func resolve(host: String, port: Int) async throws -> [SocketAddress] {
        if let literal = try? SocketAddress(ipAddress: host, port: port) { return [literal] }
        return try await NIOThreadPool.singleton.runIfActive {
            var hints = addrinfo()
            hints.ai_family = AF_UNSPEC
            hints.ai_socktype = Int32(SOCK_DGRAM.rawValue)
            var result: UnsafeMutablePointer<addrinfo>?
            let status = getaddrinfo(host, String(port), &hints, &result)
            guard status == 0, let first = result else {
                throw ResolutionError(host: host, reason: String(cString: gai_strerror(status)))
            }
            defer { freeaddrinfo(first) }
            var addresses: [SocketAddress] = []
            var cursor: UnsafeMutablePointer<addrinfo>? = first
            while let entry = cursor {
                if let raw = entry.pointee.ai_addr {
                    let address: SocketAddress? =
                        switch entry.pointee.ai_family {
                        case AF_INET:
                            raw.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                                SocketAddress($0.pointee, host: host)
                            }
                        case AF_INET6:
                            raw.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                                SocketAddress($0.pointee, host: host)
                            }
                        default: nil
                        }
                    if let address, !addresses.contains(address) { addresses.append(address) }
                }
                cursor = entry.pointee.ai_next
            }
            return addresses.sorted { ($0.protocol == .inet ? 0 : 1) < ($1.protocol == .inet ? 0 : 1) }
        }
    }

    public struct ResolutionError: Error, Sendable, CustomStringConvertible {
        public let host: String
        public let reason: String
        public var description: String { "cannot resolve \(host): \(reason)" }
    }
}
