import Glibc
public import NIOCore
import NIOPosix

/// What the network answered, by ICMP, to one datagram sent to a UDP server.
public enum ICMPAnswer: Sendable, Hashable {
    /// Nothing within the time, or the server itself answered.
    case none
    /// "Port unreachable": the host is there and nothing listens on the port (or a firewall rejects so).
    case portUnreachable
    /// Another ICMP error: no route to the host or network, or a firewall's host- or admin-prohibited.
    case rejected
}

/// Hears the ICMP error a UDP server's host (or a router on the way) sends back, which an unconnected socket
/// never receives: so "nothing listens" is known at the first answer, not after every retransmission.
///
/// A plain socket of its own, connected, on NIO's thread pool: NIO's own UDP channels stay unconnected, since a
/// connected NIO channel traps on any ICMP error but "port unreachable" (NIO 2.x asserts, then
/// `preconditionFailure`s, reading after the error closes the socket; measured with host-prohibited).
public enum ICMPWatch {
    /// Sends `datagram` once to `address` and waits at most `timeout` for what comes back.
    public static func answer(to address: SocketAddress, datagram: [UInt8], timeout: Duration) async -> ICMPAnswer {
        let milliseconds = Int32(clamping: Int64((timeout / .milliseconds(1)).rounded(.up)))
        return (try? await NIOThreadPool.singleton.runIfActive { listen(address, datagram, milliseconds) }) ?? .none
    }

    private static func listen(_ address: SocketAddress, _ datagram: [UInt8], _ milliseconds: Int32) -> ICMPAnswer {
        let family = address.protocol == .inet6 ? AF_INET6 : AF_INET
        let fd = socket(family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .none }
        defer { close(fd) }
        let connected = address.withSockAddr { pointer, length in connect(fd, pointer, socklen_t(length)) }
        guard connected == 0 else { return .none }
        guard send(fd, datagram, datagram.count, Int32(MSG_NOSIGNAL)) >= 0 else { return verdict(errno) }
        let deadline = ContinuousClock.now + .milliseconds(Int64(milliseconds))
        while true {
            let left = deadline - .now
            guard left > .zero else { return .none }
            var poll = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = Glibc.poll(&poll, 1, Int32(clamping: Int64((left / .milliseconds(1)).rounded(.up))))
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else { return .none }
            var byte: UInt8 = 0
            // The kernel hands a connected socket's pending ICMP error to the next receive.
            return recv(fd, &byte, 1, Int32(MSG_DONTWAIT)) < 0 ? verdict(errno) : .none
        }
    }

    private static func verdict(_ code: Int32) -> ICMPAnswer {
        switch code {
        case ECONNREFUSED: .portUnreachable
        case EHOSTUNREACH, ENETUNREACH, EACCES, EPERM, EHOSTDOWN, ENONET, EPROTO: .rejected
        default: .none
        }
    }
}
