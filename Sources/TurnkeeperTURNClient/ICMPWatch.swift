import Glibc
public import NIOCore
import NIOPosix
import Synchronization

/// What the network answered, by ICMP, to datagrams sent to a UDP server.
public enum ICMPAnswer: Sendable, Hashable {
    /// Nothing within the time, or the server itself answered.
    case none
    /// "Port unreachable": the host is there and nothing listens on the port (or a firewall rejects so).
    case portUnreachable
    /// Another ICMP error Linux reports to a connected socket: a firewall's host- or admin-prohibited
    /// (firewalld's default reject), or a host or network the path says is unknown.
    case rejected
}

/// Hears the ICMP error a UDP server's host (or a firewall on the way) sends back, which an unconnected socket
/// never receives: so "nothing listens" is known at the first answer, not after every retransmission.
///
/// A plain socket of its own, connected, on NIO's thread pool: NIO's own UDP channels stay unconnected, since a
/// connected NIO channel traps on any ICMP error but "port unreachable" (NIO 2.x asserts, then
/// `preconditionFailure`s, reading after the error closes the socket; measured with host-prohibited).
public enum ICMPWatch {
    /// How often the datagram is sent again within the window: one lost datagram, or a host that rate-limits
    /// its ICMP (Linux: a burst of 6, then one a second), does not hide the answer.
    static let resend: Duration = .milliseconds(250)
    /// How long a poll lasts before cancellation is checked again.
    static let slice: Duration = .milliseconds(50)

    /// Sends `datagram` to `address` (again every ``resend``) and listens at most `timeout`, or until cancelled.
    public static func answer(to address: SocketAddress, datagram: [UInt8], timeout: Duration) async -> ICMPAnswer {
        let cancelled = Cancelled()
        return await withTaskCancellationHandler {
            let answer = try? await NIOThreadPool.singleton.runIfActive {
                listen(address, datagram, until: .now + max(.zero, timeout), cancelled: cancelled)
            }
            return answer ?? .none
        } onCancel: {
            cancelled.flag.store(true, ordering: .relaxed)
        }
    }

    private final class Cancelled: Sendable {
        let flag = Atomic<Bool>(false)
    }

    private static func listen(
        _ address: SocketAddress, _ datagram: [UInt8], until deadline: ContinuousClock.Instant, cancelled: Cancelled
    ) -> ICMPAnswer {
        let family = address.protocol == .inet6 ? AF_INET6 : AF_INET
        let fd = socket(family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .none }
        defer { close(fd) }
        let connected = address.withSockAddr { pointer, length in connect(fd, pointer, socklen_t(length)) }
        guard connected == 0 else { return .none }
        var nextSend = ContinuousClock.now
        while !cancelled.flag.load(ordering: .relaxed) {
            let now = ContinuousClock.now
            guard now < deadline else { return .none }
            if now >= nextSend {
                // A send that fails reports an error already queued for the socket.
                guard send(fd, datagram, datagram.count, Int32(MSG_NOSIGNAL)) >= 0 else { return verdict(errno) }
                nextSend = now + resend
            }
            let wait = min(deadline, nextSend, now + slice) - now
            var poll = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = Glibc.poll(&poll, 1, Int32(clamping: Int64(min((wait / .milliseconds(1)).rounded(.up), 1e6))))
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else { continue }
            var byte: UInt8 = 0
            // The kernel hands a connected socket's pending ICMP error to the next receive.
            if recv(fd, &byte, 1, Int32(MSG_DONTWAIT)) >= 0 { return .none }
            let code = errno
            if code == EAGAIN || code == EINTR { continue }
            return verdict(code)
        }
        return .none
    }

    private static func verdict(_ code: Int32) -> ICMPAnswer {
        switch code {
        case ECONNREFUSED: .portUnreachable
        case EHOSTUNREACH, ENETUNREACH, EHOSTDOWN, ENONET, EPROTO, EACCES: .rejected
        default: .none
        }
    }
}
