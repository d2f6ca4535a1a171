import Synchronization
import TurnkeeperExecution
import TurnkeeperSTUN
import TurnkeeperTURNClient

/// Media-sized packets from caller to callee through both relays, echoed back by the callee:
/// the worst case of a call, both parties behind symmetric NAT, relay talking to relay.
struct RelayExchange {
    enum Path {
        case channel(UInt16)
        case indication
    }

    struct Result {
        var sent: Int
        var received: Int
        var rtt: (min: Double, median: Double, max: Double)?

        var lossPercent: Double {
            sent == 0 ? 100 : (Double(sent - received) / Double(sent) * 100).rounded(toPlaces: 1)
        }
    }

    let caller: TURNClient
    let callee: TURNClient
    let calleeRelay: TransportAddress
    let path: Path
    let packets: Int
    let size: Int

    private struct Tally {
        var sentAt: [ContinuousClock.Instant?]
        var rtts: [Double] = []
        var seen: Set<Int> = []
    }

    /// Shared between the sender and the collector, which run as sibling tasks.
    private final class SharedTally: Sendable {
        let state: Mutex<Tally>
        init(packets: Int) { state = Mutex(Tally(sentAt: Array(repeating: nil, count: packets))) }
        func withLock<R>(_ body: (inout Tally) -> R) -> R { state.withLock { body(&$0) } }
    }

    private enum Event: Sendable {
        case done
        case deadline
        case helperEnded
    }

    func run(deadline: ContinuousClock.Instant) async -> Result {
        // A tag per exchange, so packets of an earlier exchange are never counted in this one.
        let tag = TransactionID.random().bytes.prefix(4)
        let header: [UInt8] = Array("TKPB".utf8) + tag
        let tally = SharedTally(packets: packets)
        let (calleeInbox, calleeInput) = AsyncStream.makeStream(
            of: PeerData.self, bufferingPolicy: .bufferingNewest(1024))
        let (callerInbox, callerInput) = AsyncStream.makeStream(
            of: PeerData.self, bufferingPolicy: .bufferingNewest(1024))
        callee.connection.setPeerDataHandler { calleeInput.yield($0) }
        caller.connection.setPeerDataHandler { callerInput.yield($0) }
        defer {
            callee.connection.setPeerDataHandler(nil)
            caller.connection.setPeerDataHandler(nil)
            calleeInput.finish()
            callerInput.finish()
        }
        let (path, caller, callee, calleeRelay, packets, size) = (path, caller, callee, calleeRelay, packets, size)

        await withTaskGroup(of: Event.self) { group in
            group.addTask {
                // The callee echoes whatever arrives, the way it arrived.
                for await packet in calleeInbox {
                    switch (path, packet.source) {
                    case (.channel(let channel), _): try? await callee.send(packet.data, channel: channel)
                    case (.indication, .indication(let from)): try? await callee.send(packet.data, to: from)
                    default: break
                    }
                }
                return .helperEnded
            }
            group.addTask {
                for sequence in 0..<packets {
                    var payload = header + [UInt8](bigEndian32: UInt32(sequence))
                    payload += [UInt8](repeating: 0, count: max(0, size - payload.count))
                    tally.withLock { $0.sentAt[sequence] = .now }
                    switch path {
                    case .channel(let channel): try? await caller.send(payload, channel: channel)
                    case .indication: try? await caller.send(payload, to: calleeRelay)
                    }
                    // Paced like a voice stream, compressed: 2 ms apart instead of 20.
                    try? await Pause.for(.milliseconds(2))
                }
                return .helperEnded
            }
            group.addTask {
                for await packet in callerInbox {
                    let data = packet.data
                    guard data.count >= 12, Array(data.prefix(8)) == header else { continue }
                    let sequence = Int(
                        UInt32(data[8]) << 24 | UInt32(data[9]) << 16 | UInt32(data[10]) << 8 | UInt32(data[11]))
                    let complete = tally.withLock { tally -> Bool in
                        guard sequence < packets, let sent = tally.sentAt[sequence], !tally.seen.contains(sequence)
                        else {
                            return false
                        }
                        tally.seen.insert(sequence)
                        tally.rtts.append(milliseconds(packet.receivedAt - sent))
                        return tally.seen.count == packets
                    }
                    if complete { return .done }
                }
                return .helperEnded
            }
            group.addTask {
                try? await Pause.until(deadline)
                return .deadline
            }
            while let event = await group.next() {
                if event == .done || event == .deadline { break }
            }
            group.cancelAll()
        }

        return tally.withLock { tally in
            let sorted = tally.rtts.sorted()
            let stats =
                sorted.isEmpty ? nil : (min: sorted[0], median: sorted[sorted.count / 2], max: sorted[sorted.count - 1])
            return Result(sent: tally.sentAt.compactMap { $0 }.count, received: tally.seen.count, rtt: stats)
        }
    }
}

extension Array where Element == UInt8 {
    init(bigEndian32 value: UInt32) {
        self = [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
    }
}
