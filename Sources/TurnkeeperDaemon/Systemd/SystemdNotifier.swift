import Glibc
import Synchronization

/// systemd's notification protocol (sd_notify(3)) without libsystemd: one datagram per message to the
/// AF_UNIX socket named by NOTIFY_SOCKET. Without NOTIFY_SOCKET every call does nothing.
public final class SystemdNotifier: Sendable {
    private let address: [UInt8]?
    /// After STOPPING=1 only STATUS may follow, so a supervisor reads a clean order.
    private let stopping = Atomic<Bool>(false)
    private let lastStatus = Mutex<String?>(nil)

    /// Reads NOTIFY_SOCKET: a path, or `@name` for the abstract namespace.
    public init(environment: [String: String]) {
        guard let socket = environment["NOTIFY_SOCKET"], socket.hasPrefix("/") || socket.hasPrefix("@"),
            socket.utf8.count < 108
        else {
            address = nil
            return
        }
        var bytes = Array(socket.utf8)
        if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 }
        address = bytes
    }

    public var isEnabled: Bool { address != nil }

    public func ready(status: String) { send("READY=1\nSTATUS=\(status)") }

    /// Says a configuration reload begins (RELOADING=1 with the monotonic time systemd 253 asks for).
    public func reloading() {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        send("RELOADING=1\nMONOTONIC_USEC=\(Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec) / 1000)")
    }

    public func reloaded() { send("READY=1") }

    /// A line for `systemctl status`; repeated lines are not sent again.
    public func status(_ text: String) {
        let line = text.replacing("\n", with: " ")
        let changed = lastStatus.withLock { last in
            defer { last = line }
            return last != line
        }
        if changed { send("STATUS=\(line)") }
    }

    public func watchdog() {
        if !stopping.load(ordering: .acquiring) { send("WATCHDOG=1") }
    }

    public func stopping(status: String) {
        stopping.store(true, ordering: .releasing)
        send("STOPPING=1\nSTATUS=\(status)")
    }

    /// The interval at which to ping: half of WATCHDOG_USEC, when it is set for this process.
    public static func watchdogInterval(environment: [String: String], pid: Int32? = nil) -> Duration? {
        guard let text = environment["WATCHDOG_USEC"], let microseconds = Int64(text), microseconds > 0 else {
            return nil
        }
        if let owner = environment["WATCHDOG_PID"], Int32(owner) != (pid ?? getpid()) { return nil }
        return .microseconds(microseconds / 2)
    }

    private func send(_ message: String) {
        guard let address else { return }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var target = sockaddr_un()
        target.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &target.sun_path) { path in
            for (index, byte) in address.enumerated() { path[index] = byte }
        }
        // An abstract name's length counts exactly; a path's includes its terminating zero.
        let length = MemoryLayout<sa_family_t>.size + address.count + (address.first == 0 ? 0 : 1)
        var bytes = Array(message.utf8)
        _ = withUnsafePointer(to: &target) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                sendto(fd, &bytes, bytes.count, Int32(MSG_NOSIGNAL), socketAddress, socklen_t(length))
            }
        }
    }
}
