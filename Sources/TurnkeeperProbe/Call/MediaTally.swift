import Glibc
import Synchronization

/// Counts a voice-like stream: which of the peer's packets arrived, their interarrival jitter (RFC 3550,
/// section 6.4.1), and round trips from our packets that the peer echoed back.
final class MediaTally: Sendable {
    private struct State {
        var seen: Set<UInt32> = []
        var rtts: [Double] = []
        var jitter: Double = 0
        var lastTransit: Double?
    }

    private let state = Mutex(State())

    /// A packet of the peer's stream: sent at `sentNanos` on the shared monotonic clock, arrived now.
    func received(sequence: UInt32, sentNanos: UInt64, arrivedNanos: UInt64) {
        state.withLock { state in
            guard state.seen.insert(sequence).inserted else { return }
            let transit = Double(Int64(bitPattern: arrivedNanos &- sentNanos)) / 1e6
            if let last = state.lastTransit {
                state.jitter += (abs(transit - last) - state.jitter) / 16
            }
            state.lastTransit = transit
        }
    }

    func echoed(sentNanos: UInt64, arrivedNanos: UInt64) {
        state.withLock { $0.rtts.append(Double(Int64(bitPattern: arrivedNanos &- sentNanos)) / 1e6) }
    }

    var receivedCount: Int { state.withLock { $0.seen.count } }

    var summary: (received: Int, rtt: CallReport.RTT?, jitter: Double?) {
        state.withLock { state in
            let sorted = state.rtts.sorted()
            let rtt =
                sorted.isEmpty
                ? nil
                : CallReport.RTT(
                    min: sorted[0].rounded(toPlaces: 2), median: sorted[sorted.count / 2].rounded(toPlaces: 2),
                    max: sorted[sorted.count - 1].rounded(toPlaces: 2))
            return (state.seen.count, rtt, state.seen.count > 1 ? state.jitter.rounded(toPlaces: 3) : nil)
        }
    }
}

/// The call's packets: "TKCL" (media) or "TKCE" (an echo of media), a sequence number, the send time in
/// nanoseconds of CLOCK_MONOTONIC, padding to the packet size.
enum CallPacket {
    static let media = Array("TKCL".utf8)
    static let echo = Array("TKCE".utf8)

    static func make(sequence: UInt32, sentNanos: UInt64, size: Int) -> [UInt8] {
        var bytes = media
        for shift in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: sequence >> shift)) }
        for shift in stride(from: 56, through: 0, by: -8) {
            bytes.append(UInt8(truncatingIfNeeded: sentNanos >> shift))
        }
        return bytes + [UInt8](repeating: 0, count: max(0, size - bytes.count))
    }

    /// (kind, sequence, sent time) of one of our packets, or nil for anything else.
    static func parse(_ bytes: [UInt8]) -> (echo: Bool, sequence: UInt32, sentNanos: UInt64)? {
        guard bytes.count >= 16 else { return nil }
        let tag = Array(bytes[0..<4])
        guard tag == media || tag == echo else { return nil }
        let sequence = bytes[4..<8].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        let sent = bytes[8..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return (tag == echo, sequence, sent)
    }

    static func echoing(_ bytes: [UInt8]) -> [UInt8] { echo + bytes.dropFirst(4) }
}

/// CLOCK_MONOTONIC in nanoseconds: the same clock in every network namespace of one machine, so the two
/// parties of a lab call can measure one-way transit.
func monotonicNanos() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}
