import Foundation
import Glibc
import Synchronization

/// A stand-in for systemd's notification socket: an AF_UNIX datagram socket that records every message
/// with the time it arrived.
public final class NotifySocket: Sendable {
    public struct Message: Sendable {
        public var text: String
        public var at: ContinuousClock.Instant

        /// KEY=VALUE lines.
        public var fields: [String: String] {
            var fields: [String: String] = [:]
            for line in text.split(separator: "\n") {
                let parts = line.split(separator: "=", maxSplits: 1)
                if parts.count == 2 { fields[String(parts[0])] = String(parts[1]) }
            }
            return fields
        }
    }

    public let path: String
    private let fd: Int32
    private let received = Mutex<[Message]>([])
    private let closed = Atomic<Bool>(false)

    public init(in directory: TemporaryDirectory) throws {
        path = directory.file("notify.sock")
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket(AF_UNIX): errno \(errno)") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < 108 else { throw TestFailure("\(path) is too long for a unix socket") }
        withUnsafeMutableBytes(of: &address.sun_path) { target in
            for (index, byte) in bytes.enumerated() { target[index] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard bound == 0 else { throw TestFailure("cannot bind \(path): errno \(errno)") }
        var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let thread = Thread { [self] in
            var buffer = [UInt8](repeating: 0, count: 4096)
            while !closed.load(ordering: .acquiring) {
                let count = recv(fd, &buffer, buffer.count, 0)
                if count > 0 {
                    let message = Message(
                        text: String(decoding: buffer[0..<count], as: UTF8.self), at: ContinuousClock.now)
                    received.withLock { $0.append(message) }
                }
            }
            Glibc.close(fd)
        }
        thread.start()
    }

    public var messages: [Message] { received.withLock { $0 } }

    /// Waits until a message has `key`=`value` (any value when nil).
    @discardableResult
    public func wait(for key: String, _ value: String? = nil, count: Int = 1, timeout: Duration) async throws -> Message
    {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while true {
            let matching = messages.filter { message in
                message.fields[key].map { value == nil || $0 == value } ?? false
            }
            if matching.count >= count { return matching[count - 1] }
            guard clock.now < deadline else {
                throw TestFailure("no \(key)=\(value ?? "*") ×\(count) within \(timeout); got: \(messages.map(\.text))")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    public func close() { closed.store(true, ordering: .releasing) }
}
