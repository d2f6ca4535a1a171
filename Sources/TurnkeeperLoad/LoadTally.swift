import Synchronization
import TurnkeeperProbe
import TurnkeeperTURNClient

/// One run's counters, shared by every call's tasks, the pacer and the receive taps. Sized once for the run's
/// calls, so counting a packet allocates nothing.
///
/// A step's window is measured by sequence number: the packets each stream sent between the window's opening
/// and its closing, and which of those arrived, however late, until the step is measured.
final class LoadTally: MediaCounter {
    /// Transit is counted in 0.1 ms bins up to 2 s; later packets go to the last bin.
    static let transitBins = 20_000

    private struct State {
        /// Calls that came up or were refused, in all; the step is settled when this reaches its target.
        var settled = 0
        var up = 0
        var target = 0
        var setups: [Double] = []
        var refusals: [String: Int] = [:]
        var retries: [String: Int] = [:]
        var refreshFailures: [String: Int] = [:]
        var dropped: [String: Int] = [:]
        /// The step's first description of each kind and code ("refused 401", "refresh timeout", "dropped
        /// error"), for the report: what the server or the connection said.
        var reasons: [String: String] = [:]
        var held = 0
        /// Packets too late to send while the window was open.
        var late = 0
        var windowOpen = false
        var duplicates = 0
        var releasesUnconfirmed = 0
        /// When the step's calls began and when the last of them settled: allocations a second.
        var stepBegan = ContinuousClock.now
        var stepSettled: ContinuousClock.Instant?
        var stepUp = 0
        var stepUpAtSettle = 0
        /// Per stream: packets sent (the next sequence number), the highest sequence received and the 64 below
        /// it (duplicates are counted once), and the window's sequence range and arrivals within it.
        var sent: [Int]
        var highest: [Int]
        var seen: [UInt64]
        var windowStart: [Int]
        var windowEnd: [Int]
        var windowReceived: [Int]
        var jitter: [Double]
        var lastTransit: [Double]
        var transit: [Int]
    }

    private let state: Mutex<State>

    init(calls: Int) {
        let streams = calls * 2
        let zeros = Array(repeating: 0, count: streams)
        state = Mutex(
            State(
                sent: zeros, highest: Array(repeating: -1, count: streams), seen: Array(repeating: 0, count: streams),
                windowStart: zeros, windowEnd: zeros, windowReceived: zeros,
                jitter: Array(repeating: 0, count: streams),
                lastTransit: Array(repeating: -1, count: streams),
                transit: Array(repeating: 0, count: Self.transitBins)))
    }

    /// A new step of `calls` calls in all: its setups, refusals and failures are counted from here.
    func beginStep(calls: Int) {
        state.withLock {
            $0.setups.removeAll(keepingCapacity: true)
            $0.refusals.removeAll()
            $0.retries.removeAll()
            $0.refreshFailures.removeAll()
            $0.dropped.removeAll()
            $0.reasons.removeAll()
            $0.target = calls
            $0.stepBegan = .now
            $0.stepSettled = nil
            $0.stepUp = 0
        }
    }

    var settled: Int { state.withLock { $0.settled } }

    /// Calls up now, in all.
    var callsUp: Int { state.withLock { $0.up } }

    private static func settle(_ state: inout State) {
        state.settled += 1
        if state.stepSettled == nil && state.settled >= state.target {
            state.stepSettled = .now
            state.stepUpAtSettle = state.stepUp
        }
    }

    func up(setup milliseconds: Double) {
        state.withLock {
            $0.up += 1
            $0.stepUp += 1
            $0.setups.append(milliseconds)
            Self.settle(&$0)
        }
    }

    func refused(_ code: String, reason: String) {
        state.withLock {
            $0.refusals[code, default: 0] += 1
            if $0.reasons["refused " + code] == nil { $0.reasons["refused " + code] = reason }
            Self.settle(&$0)
        }
    }

    /// A call's setup was answered with `code` and tried again (a 437: from another local port).
    func retried(_ code: String) {
        state.withLock { $0.retries[code, default: 0] += 1 }
    }

    /// A call's refresh of its allocation, permission or channel failed (by code): the call may drop.
    func refreshFailed(_ code: String, reason: String) {
        state.withLock {
            $0.refreshFailures[code, default: 0] += 1
            if $0.reasons["refresh " + code] == nil { $0.reasons["refresh " + code] = reason }
        }
    }

    /// A call's connection ended under it (by code): the call dropped.
    func dropped(_ code: String, reason: String) {
        state.withLock {
            $0.up -= 1
            $0.dropped[code, default: 0] += 1
            if $0.reasons["dropped " + code] == nil { $0.reasons["dropped " + code] = reason }
        }
    }

    /// An allocation whose release (a Refresh with lifetime 0) was not answered: it lives out its lifetime.
    func releaseUnconfirmed() {
        state.withLock { $0.releasesUnconfirmed += 1 }
    }

    var releasesUnconfirmed: Int { state.withLock { $0.releasesUnconfirmed } }

    func sent(stream: Int, packets: Int) {
        state.withLock { state in
            guard stream < state.sent.count else { return }
            state.sent[stream] += packets
        }
    }

    func held(stream: Int, packets: Int) {
        state.withLock { $0.held += packets }
    }

    func late(stream: Int, packets: Int) {
        state.withLock { if $0.windowOpen { $0.late += packets } }
    }

    /// The connection closed under a stream; the call's own task reports why.
    func closed(stream: Int) {}

    /// A packet of `stream` arrived, read in place: counted once, its transit (both parties are this process,
    /// one clock) and RFC 3550 jitter.
    func received(_ payload: UnsafeRawBufferPointer, stream: Int) {
        guard let packet = MediaPacket.parse(payload), !packet.echo else { return }
        let transit = Double(Int64(bitPattern: MediaPacket.now() &- packet.sentNanos)) / 1e6
        let sequence = Int(packet.sequence)
        state.withLock { state in
            // The pacer counts a packet before writing it: a sequence not yet counted was never sent by us.
            guard stream < state.sent.count, sequence < state.sent[stream] else { return }
            let highest = state.highest[stream]
            if sequence > highest {
                let shift = sequence - highest
                state.seen[stream] = shift >= 64 ? 1 : state.seen[stream] << UInt64(shift) | 1
                state.highest[stream] = sequence
            } else {
                // 64 or more behind the newest: too late for any jitter buffer, so lost, not a duplicate.
                guard highest - sequence < 64 else { return }
                let bit = UInt64(1) << UInt64(highest - sequence)
                guard state.seen[stream] & bit == 0 else {
                    state.duplicates += 1
                    return
                }
                state.seen[stream] |= bit
            }
            let last = state.lastTransit[stream]
            if last >= 0 { state.jitter[stream] += (abs(transit - last) - state.jitter[stream]) / 16 }
            state.lastTransit[stream] = transit
            if sequence >= state.windowStart[stream] && sequence < state.windowEnd[stream] {
                state.windowReceived[stream] += 1
                state.transit[min(Self.transitBins - 1, max(0, Int(transit * 10)))] += 1
            }
        }
    }

    func openWindow() {
        state.withLock { state in
            if state.stepSettled == nil {
                state.stepSettled = .now
                state.stepUpAtSettle = state.stepUp
            }
            state.held = 0
            state.late = 0
            state.windowOpen = true
            state.duplicates = 0
            for stream in state.sent.indices {
                state.windowStart[stream] = state.sent[stream]
                state.windowEnd[stream] = .max
                state.windowReceived[stream] = 0
            }
            for bin in state.transit.indices { state.transit[bin] = 0 }
        }
    }

    /// Ends the window: what each stream sent until now is what the step is measured on.
    func closeWindow() {
        state.withLock { state in
            state.windowOpen = false
            for stream in state.sent.indices { state.windowEnd[stream] = state.sent[stream] }
        }
    }

    /// The step, once the window's last packets had their grace to arrive: a packet not here by now is lost,
    /// as a receiver's jitter buffer would have given up on it.
    func measure(
        calls: Int, seconds: Double, shape: MediaShape, clientCPUPercent: Double, coturnCPUPercent: Double?,
        coturnResidentBytes: Int?
    ) -> LoadStep {
        state.withLock { state in
            var sent = 0
            var received = 0
            var live: [Double] = []
            for stream in state.sent.indices {
                let streamSent = state.windowEnd[stream] - state.windowStart[stream]
                guard streamSent > 0 else { continue }
                sent += streamSent
                received += state.windowReceived[stream]
                live.append(state.jitter[stream])
            }
            let lost = max(0, sent - received)
            let settleSeconds = state.stepSettled.map { ($0 - state.stepBegan).seconds } ?? 0
            let seconds = max(seconds, 0.001)
            return LoadStep(
                calls: calls, callsUp: state.up, setupMs: Self.percentiles(state.setups), packetsSent: sent,
                lossPercent: sent == 0 ? 0 : (Double(lost) / Double(sent) * 1000).rounded() / 10,
                jitterMs: Self.percentiles(live), transitMs: Self.histogramPercentiles(state.transit),
                packetsPerSecond: (Double(received) / seconds).rounded(),
                bytesPerSecond: (Double(received * shape.packetSize) / seconds).rounded(),
                allocationsPerSecond: state.stepUpAtSettle == 0 || settleSeconds <= 0
                    ? nil : (Double(state.stepUpAtSettle * 2) / settleSeconds).rounded(),
                packetsHeld: state.held, packetsLate: state.late, duplicates: state.duplicates,
                refusals: state.refusals, retries: state.retries,
                refreshFailures: state.refreshFailures, dropped: state.dropped, reasons: state.reasons,
                clientCPUPercent: (clientCPUPercent * 10).rounded() / 10,
                coturnCPUPercent: coturnCPUPercent.map { ($0 * 10).rounded() / 10 },
                coturnResidentBytes: coturnResidentBytes)
        }
    }

    static func percentiles(_ values: [Double]) -> LoadStep.Percentiles? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        func at(_ fraction: Double) -> Double {
            (sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * fraction + 0.5))] * 100).rounded() / 100
        }
        return LoadStep.Percentiles(p50: at(0.5), p99: at(0.99))
    }

    static func histogramPercentiles(_ bins: [Int]) -> LoadStep.Percentiles? {
        let total = bins.reduce(0, +)
        guard total > 0 else { return nil }
        func at(_ fraction: Double) -> Double {
            let target = Int((Double(total) * fraction).rounded(.up))
            var seen = 0
            for (bin, count) in bins.enumerated() {
                seen += count
                if seen >= max(1, target) { return Double(bin) / 10 }
            }
            return Double(bins.count - 1) / 10
        }
        return LoadStep.Percentiles(p50: at(0.5), p99: at(0.99))
    }
}
