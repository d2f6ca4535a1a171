import Foundation
import Glibc
import Synchronization

/// A broken or hostile "TURN server" on 127.0.0.1, UDP and TCP on the same port, answering every
/// request in one bad way. Runs on its own threads; every loop is bounded in count and time.
public final class HostileServer: Sendable {
    public enum Behaviour: String, Sendable, CaseIterable {
        /// Random bytes that are neither STUN nor ChannelData.
        case garbage
        /// The first 10 bytes of a valid response.
        case truncated
        /// A well-formed response for another transaction.
        case wrongTransaction
        /// A STUN header claiming 65,532 bytes of attributes that never come.
        case hugeLength
        /// An endless stream of ChannelData frames instead of any response (TCP); a flood of them (UDP).
        case endless
        /// Reads everything and never answers.
        case silent
        /// Drops the first two datagrams, then answers correctly: only retransmission gets through.
        case dropFirstTwo
    }

    public let port: UInt16
    public let behaviour: Behaviour
    private let stopped = Atomic<Bool>(false)
    /// Requests seen, for behaviours that change over time.
    public let received = Atomic<Int>(0)
    private let udpSocket: Int32
    private let tcpSocket: Int32

    public init(_ behaviour: Behaviour) throws {
        self.behaviour = behaviour
        port = try LoopbackUDP.freePort()
        udpSocket = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        tcpSocket = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(tcpSocket, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        for fd in [udpSocket, tcpSocket] {
            var address = LoopbackUDP.loopback(port)
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard bound == 0 else { throw TestFailure("hostile server cannot bind \(port)") }
            var wait = timeval(tv_sec: 0, tv_usec: 100_000)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
        }
        listen(tcpSocket, 8)
        let udp = Thread { [self] in serveUDP() }
        let tcp = Thread { [self] in serveTCP() }
        udp.start()
        tcp.start()
    }

    public func stop() {
        stopped.store(true, ordering: .relaxed)
    }

    deinit {
        close(udpSocket)
        close(tcpSocket)
    }

    private var isStopped: Bool { stopped.load(ordering: .relaxed) }

    /// What to answer to `request`, a STUN message from the client.
    private func answer(to request: [UInt8]) -> [UInt8] {
        let transaction = request.count >= 20 ? Array(request[8..<20]) : Array(repeating: 0, count: 12)
        // A Binding success response with XOR-MAPPED-ADDRESS 127.0.0.1:1.
        var valid: [UInt8] = [0x01, 0x01, 0x00, 0x0C, 0x21, 0x12, 0xA4, 0x42] + transaction
        valid += [0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0x21, 0x13, 0x5E, 0x12, 0xA4, 0x43]
        switch behaviour {
        case .garbage: return (0..<64).map { _ in UInt8.random(in: 0x80...0xFF) }
        case .truncated: return Array(valid.prefix(10))
        case .wrongTransaction:
            var other = valid
            other[8] ^= 0xFF
            return other
        case .hugeLength: return [0x01, 0x01, 0xFF, 0xFC, 0x21, 0x12, 0xA4, 0x42] + transaction
        case .endless: return [0x40, 0x00, 0x00, 0x04, 1, 2, 3, 4]
        case .silent: return []
        case .dropFirstTwo: return received.add(1, ordering: .relaxed).newValue > 2 ? valid : []
        }
    }

    private func serveUDP() {
        var buffer = [UInt8](repeating: 0, count: 2048)
        let started = ContinuousClock.now
        while !isStopped && ContinuousClock.now - started < .seconds(60) {
            var from = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let count = withUnsafeMutablePointer(to: &from) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    recvfrom(udpSocket, &buffer, buffer.count, 0, $0, &length)
                }
            }
            guard count > 0 else { continue }
            let reply = answer(to: Array(buffer[0..<count]))
            guard !reply.isEmpty else { continue }
            // A flood is bounded too: 1,000 datagrams an answer.
            for _ in 0..<(behaviour == .endless ? 1000 : 1) {
                _ = withUnsafePointer(to: &from) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(udpSocket, reply, reply.count, 0, $0, length)
                    }
                }
            }
        }
    }

    private func serveTCP() {
        let started = ContinuousClock.now
        while !isStopped && ContinuousClock.now - started < .seconds(60) {
            let client = accept(tcpSocket, nil, nil)
            guard client >= 0 else { continue }
            var wait = timeval(tv_sec: 0, tv_usec: 100_000)
            setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
            var buffer = [UInt8](repeating: 0, count: 2048)
            let count = recv(client, &buffer, buffer.count, 0)
            if count > 0 {
                let reply = answer(to: Array(buffer[0..<count]))
                if behaviour == .endless {
                    // Up to 20 MB or 10 s, or until the client hangs up.
                    var sent = 0
                    let chunk = Array(repeatElement(reply, count: 512).joined())
                    while !isStopped && sent < 20_000_000 && ContinuousClock.now - started < .seconds(10) {
                        let written = send(client, chunk, chunk.count, Int32(MSG_NOSIGNAL))
                        if written <= 0 { break }
                        sent += written
                    }
                } else if !reply.isEmpty {
                    _ = send(client, reply, reply.count, Int32(MSG_NOSIGNAL))
                    // Hold the connection open so the client must rely on its own deadline.
                    while !isStopped && recv(client, &buffer, buffer.count, 0) != 0
                        && ContinuousClock.now - started < .seconds(10)
                    {}
                } else {
                    while !isStopped && recv(client, &buffer, buffer.count, 0) != 0
                        && ContinuousClock.now - started < .seconds(10)
                    {}
                }
            }
            close(client)
        }
    }
}
