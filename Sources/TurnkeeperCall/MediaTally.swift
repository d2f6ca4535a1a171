import Glibc
import Synchronization
import TurnkeeperProbe

/// Counts a voice-like stream: which of the peer's packets arrived, their interarrival jitter (RFC 3550,
/// section 6.4.1), and round trips from our packets that the peer echoed back.
final class MediaTally: Sendable {
    private struct State {
        var seen: Set<UInt32> = []
        var highest: UInt32?
        var rtts: [Double] = []
        var jitter: Double = 0
        var lastTransit: Double?
    }

    private let state = Mutex(State())

    /// A packet of the peer's stream: sent at `sentNanos` on the shared monotonic clock, arrived now.
    func received(sequence: UInt32, sentNanos: UInt64, arrivedNanos: UInt64) {
        state.withLock { state in
            guard state.seen.insert(sequence).inserted else { return }
            state.highest = max(state.highest ?? sequence, sequence)
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

    /// One more than the highest sequence number that arrived: the fewest packets the peer can have sent.
    var leastNumbered: Int { state.withLock { $0.highest.map { Int($0) + 1 } ?? 0 } }

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
