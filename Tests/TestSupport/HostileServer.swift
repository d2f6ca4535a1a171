import Foundation
import Glibc
import Synchronization
import TurnkeeperSTUN

/// A broken or hostile "TURN server" on 127.0.0.1, UDP and TCP on the same port, answering every
/// request in one bad way. Runs on its own threads; every loop is bounded in count and time.
public final class HostileServer: Sendable {
    /// The password the TURN behaviours sign with (and expect), for any username; their realm.
    public static let password = "hostile-password"
    public static let realm = "hostile.test"

    /// What ``Behaviour/hostileText`` sends as reason phrase, REALM and SOFTWARE: terminal escapes that
    /// clear the line and colour it, line breaks, a forged last line of a passing probe, a bidi override,
    /// C1 controls and a line separator.
    public static let hostileText =
        "\r\u{1B}[2K\u{1B}[32mPASS\u{1B}[0m\nAll 1 target(s) passed: calls through this server work from here."
        + "\n\u{1B}]0;owned\u{07}\u{202E}dessap\u{202C}\u{85}\u{9B}31m\u{2028}\r\n"

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
        /// Answers every request with error 500 whose reason phrase, REALM and SOFTWARE are ``hostileText``.
        case hostileText
        /// A TURN server (realm ``realm``, password ``password``) whose Allocate success is not signed.
        case unsignedAllocation
        /// A TURN server whose Allocate success is signed with another key.
        case forgedAllocation
        /// A TURN server that signs its Allocate success but not Refresh, CreatePermission or ChannelBind.
        case unsignedAfterAllocation
        /// pion's answer to a wrong password: 400, unsigned, to the signed Allocate.
        case badRequestToCredentials
        /// Upstream coturn 4.17.1 as recorded against it (docs/upstream-coturn.md): no reason phrases, no
        /// SOFTWARE, no OTHER-ADDRESS; a stateless nonce that is stale once (438, as after a restart); 440 to
        /// an IPv6 relay; 403 to every peer outside the documentation ranges, 443 across families; every answer
        /// to a signed request signed.
        case upstreamRecorded
        /// A TURN server that answers every signed Allocate with 437 (allocation mismatch), signed, as coturn
        /// answers a 5-tuple whose allocation it still holds. ``allocationSources`` has the client ports.
        case allocationMismatch

        /// Behaviours that hold a conversation: over TCP they answer every message, not just the first.
        var isConversational: Bool {
            switch self {
            case .hostileText, .unsignedAllocation, .forgedAllocation, .unsignedAfterAllocation,
                .badRequestToCredentials, .upstreamRecorded, .allocationMismatch:
                true
            default: false
            }
        }
    }

    public let port: UInt16
    public let behaviour: Behaviour
    private let stopped = Atomic<Bool>(false)
    /// Requests seen, for behaviours that change over time.
    public let received = Atomic<Int>(0)
    /// ``Behaviour/upstreamRecorded``: whether the first nonce was declared stale yet.
    public let staleNonceSent = Atomic<Bool>(false)
    /// The source port and transaction of each signed Allocate over UDP, in order (retransmissions included).
    public let allocationSources = Mutex<[(port: UInt16, transaction: [UInt8])]>([])
    /// TCP connections being served by their own threads.
    private let connections = Atomic<Int>(0)
    private let udpSocket: Int32
    private let tcpSocket: Int32

    public init(_ behaviour: Behaviour) throws {
        self.behaviour = behaviour
        // A free port may be taken by another test between finding it and binding it: try another then.
        var attempt = 0
        while true {
            attempt += 1
            let candidate = try LoopbackUDP.freePort()
            let udp = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            let tcp = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var one: Int32 = 1
            setsockopt(tcp, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            let bound = [udp, tcp].allSatisfy { fd in
                var address = LoopbackUDP.loopback(candidate)
                return withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                } == 0
            }
            if bound {
                port = candidate
                udpSocket = udp
                tcpSocket = tcp
                break
            }
            close(udp)
            close(tcp)
            guard attempt < 20 else { throw TestFailure("hostile server found no free port in 20 attempts") }
        }
        for fd in [udpSocket, tcpSocket] {
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
        if behaviour.isConversational { return converse(request) }
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
        default: return []
        }
    }

    /// The conversational behaviours: a well-formed answer, wrong in the one way the behaviour names.
    private func converse(_ bytes: [UInt8]) -> [UInt8] {
        guard let request = try? DecodedSTUNMessage(bytes).message, request.type.messageClass == .request else {
            return []
        }
        received.add(1, ordering: .relaxed)
        let method = request.type.method
        let loopback = TransportAddress(ipv4: "127.0.0.1", port: 1)!
        if behaviour == .hostileText {
            var error = STUNMessage(STUNMessageType(method, .errorResponse), transactionID: request.transactionID)
            error.appendErrorCode(STUNErrorCode(code: 500, reason: Self.hostileText))
            error.appendText(.realm, Self.hostileText)
            error.appendText(.nonce, "nonce")
            error.appendText(.software, Self.hostileText)
            return error.encoded()
        }
        if method == .binding {
            var success = STUNMessage(STUNMessageType(.binding, .successResponse), transactionID: request.transactionID)
            success.appendXorAddress(.xorMappedAddress, loopback)
            return success.encoded()
        }
        let upstream = behaviour == .upstreamRecorded
        guard request.value(.messageIntegrity) != nil, let username = request.text(.username) else {
            var challenge = STUNMessage(STUNMessageType(method, .errorResponse), transactionID: request.transactionID)
            challenge.appendErrorCode(STUNErrorCode(code: 401, reason: upstream ? "" : "Unauthorized"))
            challenge.appendText(.realm, Self.realm)
            challenge.appendText(.nonce, upstream ? Self.upstreamNonces[0] : "0123456789abcdef")
            return challenge.encoded()
        }
        if upstream { return upstreamAnswer(request, method: method, username: username) }
        // IPv4 relays only, as a server with one family says so (RFC 6156): 440 to a request for IPv6.
        if method == .allocate, request.value(.requestedAddressFamily)?.first == TransportAddress.Family.ipv6.rawValue {
            var refusal = STUNMessage(STUNMessageType(method, .errorResponse), transactionID: request.transactionID)
            refusal.appendErrorCode(STUNErrorCode(code: 440, reason: "Address Family not Supported"))
            return refusal.encoded(
                integrity: .longTerm(username: username, realm: Self.realm, password: Self.password))
        }
        if behaviour == .allocationMismatch, method == .allocate {
            var refusal = STUNMessage(STUNMessageType(method, .errorResponse), transactionID: request.transactionID)
            refusal.appendErrorCode(STUNErrorCode(code: 437, reason: "Allocation Mismatch"))
            return refusal.encoded(
                integrity: .longTerm(username: username, realm: Self.realm, password: Self.password))
        }
        if behaviour == .badRequestToCredentials {
            var error = STUNMessage(STUNMessageType(method, .errorResponse), transactionID: request.transactionID)
            error.appendErrorCode(STUNErrorCode(code: 400, reason: "Bad Request"))
            return error.encoded()
        }
        var success = STUNMessage(STUNMessageType(method, .successResponse), transactionID: request.transactionID)
        if method == .allocate {
            success.appendXorAddress(.xorRelayedAddress, TransportAddress(ipv4: "127.0.0.1", port: port)!)
            success.appendXorAddress(.xorMappedAddress, loopback)
            success.appendLifetime(600)
        }
        let signed =
            switch behaviour {
            case .unsignedAllocation: false
            case .unsignedAfterAllocation: method == .allocate
            default: true
            }
        guard signed else { return success.encoded() }
        let password = behaviour == .forgedAllocation ? "forged" : Self.password
        return success.encoded(
            integrity: .longTerm(username: username, realm: Self.realm, password: password), fingerprint: true)
    }

    /// Two stateless nonces as 4.17.1 writes them (issue time and signature, 24 hex digits).
    static let upstreamNonces = ["6b164132737f4eb022ec7f51", "6b16413bdc6a01a9f0d3c4e2"]

    /// ``Behaviour/upstreamRecorded`` once the request is signed: the answers recorded from 4.17.1, rebuilt for
    /// this transaction and signed with this client's key, as 4.17.1 signs them.
    private func upstreamAnswer(_ request: STUNMessage, method: STUNMethod, username: String) -> [UInt8] {
        let key = STUNIntegrityKey.longTerm(username: username, realm: Self.realm, password: Self.password)
        func error(_ code: Int, nonce: String? = nil) -> [UInt8] {
            var answer = STUNMessage(STUNMessageType(method, .errorResponse), transactionID: request.transactionID)
            answer.appendErrorCode(STUNErrorCode(code: code, reason: ""))
            if let nonce {
                answer.appendText(.nonce, nonce)
                answer.appendText(.realm, Self.realm)
                return answer.encoded()
            }
            return answer.encoded(integrity: key)
        }
        // The nonce of the 401 is stale once, as a nonce from before a restart is; the one in the 438 works.
        if request.text(.nonce) != Self.upstreamNonces[1] {
            staleNonceSent.store(true, ordering: .relaxed)
            return error(438, nonce: Self.upstreamNonces[1])
        }
        var success = STUNMessage(STUNMessageType(method, .successResponse), transactionID: request.transactionID)
        switch method {
        case .allocate:
            if request.value(.requestedAddressFamily)?.first == TransportAddress.Family.ipv6.rawValue {
                return error(440)
            }
            success.appendXorAddress(.xorRelayedAddress, TransportAddress(ipv4: "127.0.0.1", port: port)!)
            success.appendXorAddress(.xorMappedAddress, TransportAddress(ipv4: "127.0.0.1", port: 1)!)
            success.appendLifetime(600)
        case .createPermission, .channelBind:
            guard let peer = try? request.xorAddress(.xorPeerAddress) else { return error(400) }
            if peer.family != .ipv4 { return error(443) }
            // 4.17.1 refuses every special-purpose range by default; a public resolver and the documentation
            // range stand for the rest of the Internet.
            if peer.address != [8, 8, 8, 8] && peer.address[0..<3] != [192, 0, 2] { return error(403) }
        case .refresh:
            success.appendLifetime((try? request.lifetime()) ?? 600)
        default:
            return error(400)
        }
        return success.encoded(integrity: key)
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
            let datagram = Array(buffer[0..<count])
            if behaviour == .allocationMismatch, let request = try? DecodedSTUNMessage(datagram).message,
                request.type.method == .allocate, request.value(.messageIntegrity) != nil
            {
                allocationSources.withLock {
                    $0.append((UInt16(bigEndian: from.sin_port), request.transactionID.bytes))
                }
            }
            let reply = answer(to: datagram)
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
            if behaviour.isConversational {
                // A probe holds two connections at once (caller and callee): each gets its own thread,
                // at most 16 at a time.
                guard connections.add(1, ordering: .relaxed).newValue <= 16 else {
                    connections.subtract(1, ordering: .relaxed)
                    close(client)
                    continue
                }
                Thread { [self] in
                    converse(on: client, started: started)
                    close(client)
                    connections.subtract(1, ordering: .relaxed)
                }.start()
                continue
            }
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

    /// Answers every STUN message on a TCP connection, for up to 10 s or until the client hangs up.
    private func converse(on client: Int32, started: ContinuousClock.Instant) {
        var framer = STUNStreamFramer()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !isStopped && ContinuousClock.now - started < .seconds(10) {
            let count = recv(client, &buffer, buffer.count, 0)
            if count == 0 { return }
            guard count > 0 else { continue }
            framer.append(buffer[0..<count])
            while let frame = try? framer.next() {
                let reply = converse(frame)
                if !reply.isEmpty && send(client, reply, reply.count, Int32(MSG_NOSIGNAL)) <= 0 { return }
            }
        }
    }
}
