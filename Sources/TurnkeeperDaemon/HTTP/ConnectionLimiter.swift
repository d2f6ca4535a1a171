import Glibc
import NIOCore
import Synchronization

/// How many connections the health listener holds at once, and which one gives way when a new one comes.
///
/// Each connection holds a descriptor; unbounded, a thousand idle clients exhaust the process's descriptors
/// and with them every file, socket and child turnkeeper needs. At the limit, the oldest connection that has
/// not yet delivered a whole request is closed for the newcomer: a monitor's request, sent at once, is served
/// while a flood of idle connections only displaces itself. A request already received is never dropped.
final class ConnectionLimiter: Sendable {
    /// The limit for this process: a quarter of its soft descriptor limit, at most 256, at least 1.
    static func defaultCapacity() -> Int {
        var limit = rlimit()
        // Unlimited (RLIM_INFINITY) is the largest value, so it comes out as 256 too.
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 256 }
        return max(1, min(256, Int(clamping: limit.rlim_cur / 4)))
    }

    struct Ticket: Sendable, Hashable {
        fileprivate let number: UInt64
    }

    private struct State {
        var next: UInt64 = 0
        /// Connections still waiting for their request, oldest first.
        var waiting: [(ticket: Ticket, channel: any Channel)] = []
        /// Connections whose request arrived and is being answered.
        var serving: Set<Ticket> = []
        var count: Int { waiting.count + serving.count }
    }

    let capacity: Int
    private let state = Mutex(State())

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    /// Counts `channel` in, closing the oldest waiting connection if the limit is reached. Nil when every
    /// slot is busy answering a request: the caller closes `channel`.
    func admit(_ channel: any Channel) -> Ticket? {
        let (ticket, evicted): (Ticket?, (any Channel)?) = state.withLock { state in
            var evicted: (any Channel)?
            if state.count >= capacity {
                guard !state.waiting.isEmpty else { return (nil, nil) }
                evicted = state.waiting.removeFirst().channel
            }
            state.next += 1
            let ticket = Ticket(number: state.next)
            state.waiting.append((ticket, channel))
            return (ticket, evicted)
        }
        evicted?.close(promise: nil)
        return ticket
    }

    /// The whole request arrived: from now on the connection is answered, not displaced.
    /// False if it was displaced already.
    @discardableResult
    func beginServing(_ ticket: Ticket) -> Bool {
        state.withLock { state in
            guard let index = state.waiting.firstIndex(where: { $0.ticket == ticket }) else { return false }
            state.waiting.remove(at: index)
            state.serving.insert(ticket)
            return true
        }
    }

    func isServing(_ ticket: Ticket) -> Bool { state.withLock { $0.serving.contains(ticket) } }

    /// The connection closed.
    func release(_ ticket: Ticket) {
        state.withLock { state in
            if state.serving.remove(ticket) == nil {
                state.waiting.removeAll { $0.ticket == ticket }
            }
        }
    }

    /// Connections held now.
    var count: Int { state.withLock { $0.count } }
}
