import Synchronization
import TurnkeeperCore

/// How many secrets coturn's store holds, for /metrics: counted at most once per `maximumAge`, and by one scrape at
/// a time. Without it every scrape opened its own store connection, so a burst of scrapes (any local user can send
/// them) against a slow Redis or PostgreSQL held hundreds of connections and the listener's slots.
final class StoreCountCache: Sendable {
    private struct Entry {
        var value: Int?
        var at: Int64?
        var counting = false
    }

    private let entry = Mutex(Entry())
    private let maximumAge: Int64

    init(maximumAge: Int64 = 15) { self.maximumAge = maximumAge }

    /// The cached count when it is fresh or another scrape is counting; otherwise counts now.
    func value(now: Int64, count: () async -> Int?) async -> Int? {
        let start: Bool = entry.withLock {
            guard !$0.counting, $0.at.map({ now - $0 >= maximumAge }) ?? true else { return false }
            $0.counting = true
            return true
        }
        guard start else { return entry.withLock { $0.value } }
        let value = await count()
        entry.withLock {
            $0.value = value
            $0.at = now
            $0.counting = false
        }
        return value
    }
}
