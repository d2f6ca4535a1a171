import Synchronization
import TurnkeeperTURNClient

/// One step's counters, shared by every call's tasks, the pacer and the receive taps. Sized once for the run's
/// calls, so counting a packet allocates nothing.
final class LoadTally: MediaCounter {
    /// Transit is counted in 0.1 ms bins up to 2 s; later packets go to the last bin.
    static let transitBins = 20_000

    private struct State {
        /// Calls that came up or were refused, in all.
        var settled = 0
        var up = 0
        var setups: [Double] = []
        var refusals: [String: Int] = [:]
        var refreshFailures: [String: Int] = [:]
        var held = 0
        /// When the step's calls began and when the last of them settled: allocations a second.
        var stepBegan = ContinuousClock.now
        var stepSettled: ContinuousClock.Instant?
        var stepUp = 0
        var sent: [Int]
        var received: [Int]
        var jitter: [Double]
        var lastTransit: [Double]
        var transit: [Int]
        /// Counts at the window's opening: a step is measured on what happened inside its window.
        var sentAtOpen: [Int]
        var receivedAtOpen: [Int]
        var measuring = false
    }

    private let state: Mutex<State>

    init(calls: Int) {
        let streams = calls * 2
        let zeros = Array(repeating: 0, count: streams)
        state = Mutex(
            State(
                sent: zeros, received: zeros, jitter: Array(repeating: 0, count: streams),
                lastTransit: Array(repeating: -1, count: streams),
                transit: Array(repeating: 0, count: Self.transitBins), sentAtOpen: zeros, receivedAtOpen: zeros))
    }

    /// A new step: its setups and refusals are counted from here.
    func beginStep() {
        state.withLock {
            $0.setups.removeAll(keepingCapacity: true)
            $0.refusals.removeAll()
            $0.refreshFailures.removeAll()
            $0.measuring = false
            $0.stepBegan = .now
            $0.stepSettled = nil
            $0.stepUp = 0
        }
    }

    var settled: Int { state.withLock { $0.settled } }

    func openWindow() {
        state.withLock { state in
            state.stepSettled = state.stepSettled ?? .now
            state.held = 0
            state.sentAtOpen = state.sent
            state.receivedAtOpen = state.received
            for bin in state.transit.indices { state.transit[bin] = 0 }
            state.measuring = true
        }
    }

    func up(setup milliseconds: Double) {
        state.withLock {
            $0.up += 1
            $0.stepUp += 1
            $0.settled += 1
            $0.setups.append(milliseconds)
        }
    }

    func refused(_ code: String) {
        state.withLock {
            $0.settled += 1
            $0.refusals[code, default: 0] += 1
        }
    }

    /// All of the step's calls came up or were refused.
    func stepSettledNow() {
        state.withLock { $0.stepSettled = $0.stepSettled ?? .now }
    }

    /// A call's refresh of its allocation, permission or channel failed (by code): the call is probably lost.
    func refreshFailed(_ code: String) {
        state.withLock { $0.refreshFailures[code, default: 0] += 1 }
    }

    func sent(stream: Int, packets: Int) {
        state.withLock { state in
            guard stream < state.sent.count else { return }
            state.sent[stream] += packets
        }
    }

    func held(stream: Int, packets: Int) {
        state.withLock { $0.held += packets }
    }

    /// A packet of `stream` arrived, read in place: its transit (both parties are this process, one clock) and
    /// RFC 3550 jitter.
    func received(_ payload: UnsafeRawBufferPointer, stream: Int) {
        guard let packet = MediaPacket.parse(payload), !packet.echo else { return }
        let transit = Double(Int64(bitPattern: MediaPacket.now() &- packet.sentNanos)) / 1e6
        state.withLock { state in
            guard stream < state.received.count else { return }
            state.received[stream] += 1
            let last = state.lastTransit[stream]
            if last >= 0 { state.jitter[stream] += (abs(transit - last) - state.jitter[stream]) / 16 }
            state.lastTransit[stream] = transit
            if state.measuring {
                state.transit[min(Self.transitBins - 1, max(0, Int(transit * 10)))] += 1
            }
        }
    }

    /// The step measured over its window. Packets in flight when it closes count as sent and not yet received:
    /// at most one frame per stream, which is not counted as lost.
    func closeWindow(
        calls: Int, seconds: Double, shape: MediaShape, clientCPUPercent: Double, coturnCPUPercent: Double?,
        coturnResidentBytes: Int?
    ) -> LoadStep {
        state.withLock { state in
            state.measuring = false
            var sent = 0
            var received = 0
            var live: [Double] = []
            for stream in state.sent.indices {
                let streamSent = state.sent[stream] - state.sentAtOpen[stream]
                guard streamSent > 0 else { continue }
                sent += streamSent
                received += state.received[stream] - state.receivedAtOpen[stream]
                live.append(state.jitter[stream])
            }
            let streams = live.count
            let lost = max(0, sent - received - streams * shape.packetsPerFrame)
            let settleSeconds = state.stepSettled.map { ($0 - state.stepBegan).seconds } ?? 0
            return LoadStep(
                calls: calls, callsUp: state.up, setupMs: Self.percentiles(state.setups),
                packetsSent: sent,
                lossPercent: sent == 0 ? 0 : (Double(lost) / Double(sent) * 1000).rounded() / 10,
                jitterMs: Self.percentiles(live), transitMs: Self.histogramPercentiles(state.transit),
                packetsPerSecond: (Double(received) / max(seconds, 0.001)).rounded(),
                bytesPerSecond: (Double(received * shape.packetSize) / max(seconds, 0.001)).rounded(),
                allocationsPerSecond: state.stepUp == 0 || settleSeconds <= 0
                    ? nil : (Double(state.stepUp * 2) / settleSeconds).rounded(),
                packetsHeld: state.held, refusals: state.refusals, refreshFailures: state.refreshFailures,
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
