import Glibc
import Synchronization

/// A loopback port where nothing listens, held for as long as this lives: the kernel refuses TCP there (a
/// reset) and answers UDP with ICMP port unreachable, and no concurrent test can start a server on it. A
/// port merely freed (a stopped coturn's) can be taken by another test's server before the probe arrives,
/// which then answers instead of the kernel (seen under load).
///
/// TCP is held by a bound socket that never listens. UDP is held by a socket connected elsewhere (to port 9
/// on 127.0.0.1): the kernel hands such a socket only datagrams from that peer, and answers the rest with
/// port unreachable, as for a port nobody holds.
public final class RefusingPort: Sendable {
    public let port: UInt16
    private let descriptors: Mutex<[Int32]>

    public init() throws {
        for _ in 0..<50 {
            let port = try LoopbackUDP.freePort()
            if let held = Self.hold(port) {
                self.port = port
                descriptors = Mutex(held)
                return
            }
        }
        throw TestFailure("no loopback port could be held for TCP and UDP")
    }

    deinit { close() }

    /// Lets the port go; once only, however often called.
    public func close() {
        let held = descriptors.withLock { held in
            defer { held = [] }
            return held
        }
        for descriptor in held { _ = Glibc.close(descriptor) }
    }

    private static func hold(_ port: UInt16) -> [Int32]? {
        let stream = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        let datagram = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var local = LoopbackUDP.loopback(port)
        var elsewhere = LoopbackUDP.loopback(9)
        let length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let held =
            stream >= 0 && datagram >= 0
            && withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(stream, $0, length) == 0 && bind(datagram, $0, length) == 0
                }
            }
            && withUnsafePointer(to: &elsewhere) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(datagram, $0, length) == 0 }
            }
        guard held else {
            if stream >= 0 { _ = Glibc.close(stream) }
            if datagram >= 0 { _ = Glibc.close(datagram) }
            return nil
        }
        return [stream, datagram]
    }
}
