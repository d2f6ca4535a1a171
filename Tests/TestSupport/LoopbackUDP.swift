import Glibc
import Synchronization

/// Minimal UDP on 127.0.0.1 for the harness: free ports, and "is anyone answering yet?".
public enum LoopbackUDP {
    /// The next candidate in each range: concurrent tests of one run never draw the same port.
    private static let cursors = Mutex<[UInt16: UInt16]>([:])

    /// A port in `range` (with `span - 1` more after it) that is free for both UDP and TCP on 127.0.0.1
    /// now and was handed to no other caller in this process.
    public static func freePort(in range: ClosedRange<UInt16> = 20000...32000, span: UInt16 = 1) throws -> UInt16 {
        for _ in 0..<500 {
            let base = cursors.withLock { cursors -> UInt16 in
                let next = cursors[range.lowerBound] ?? UInt16.random(in: range)
                let wrapped = next > range.upperBound - span ? range.lowerBound : next
                cursors[range.lowerBound] = wrapped + span
                return wrapped
            }
            if (0..<span).allSatisfy({ isFree(base &+ $0, datagram: true) && isFree(base &+ $0, datagram: false) }) {
                return base
            }
        }
        throw TestFailure("no free loopback port in \(range)")
    }

    private static func isFree(_ port: UInt16, datagram: Bool) -> Bool {
        let fd = socket(AF_INET, Int32(datagram ? SOCK_DGRAM.rawValue : SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = loopback(port)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }

    public static func loopback(_ port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        return address
    }

    /// Sends `payload` to 127.0.0.1:`port` every 100 ms until a datagram accepted by `matches`
    /// comes back or `timeout` passes. Returns the answer, or nil on timeout.
    public static func ask(
        port: UInt16,
        payload: [UInt8],
        timeout: Duration,
        matches: ([UInt8]) -> Bool = { _ in true }
    ) -> [UInt8]? {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var wait = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
        var address = loopback(port)
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var buffer = [UInt8](repeating: 0, count: 2048)
        while clock.now < deadline {
            _ = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, payload, payload.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            let count = recv(fd, &buffer, buffer.count, 0)
            if count > 0 {
                let answer = Array(buffer[0..<count])
                if matches(answer) { return answer }
            }
        }
        return nil
    }

    /// A STUN Binding request (RFC 8489) and a check that an answer is its response.
    public static func stunBindingAnswered(port: UInt16, timeout: Duration) -> Bool {
        var request: [UInt8] = [0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42]
        let transaction = (0..<12).map { _ in UInt8.random(in: 0...255) }
        request += transaction
        let answer = ask(port: port, payload: request, timeout: timeout) { answer in
            answer.count >= 20 && Array(answer[8..<20]) == transaction
        }
        return answer != nil
    }

    /// True once 127.0.0.1:`port` accepts a TCP connection, trying every 50 ms until `timeout`.
    public static func tcpAccepts(port: UInt16, timeout: Duration) -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while clock.now < deadline {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { return false }
            var address = loopback(port)
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
                }
            }
            close(fd)
            if connected { return true }
            usleep(50_000)
        }
        return false
    }
}

/// TCP sockets on 127.0.0.1 for tests that play a client or squat on a port. The caller closes them.
public enum LoopbackTCP {
    /// A socket connected to 127.0.0.1:`port`, with `timeoutSeconds` on sends and receives.
    public static func connect(port: Int, timeoutSeconds: Int = 10) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: errno \(errno)") }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = LoopbackUDP.loopback(UInt16(port))
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            close(fd)
            throw TestFailure("cannot connect to 127.0.0.1:\(port): errno \(errno)")
        }
        return fd
    }

    /// A socket listening on 127.0.0.1:`port`, so that nobody else can.
    public static func listen(port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: errno \(errno)") }
        var address = LoopbackUDP.loopback(UInt16(port))
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, Glibc.listen(fd, 1) == 0 else {
            close(fd)
            throw TestFailure("cannot listen on 127.0.0.1:\(port): errno \(errno)")
        }
        return fd
    }
}
