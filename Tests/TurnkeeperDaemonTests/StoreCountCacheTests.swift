import Synchronization
import TestSupport
import Testing

@testable import TurnkeeperDaemon

@Suite("The store count behind /metrics", .mayBlock)
struct StoreCountCacheTests {
    @Test("Counted once per maximum age, by one scrape at a time; the others get the last count")
    func onceAtATime() async {
        let cache = StoreCountCache(maximumAge: 15)
        let calls = Atomic<Int>(0)
        let first = await cache.value(now: 100) {
            calls.add(1, ordering: .relaxed)
            return 3
        }
        #expect(first == 3)
        // Fresh: not counted again.
        let again = await cache.value(now: 110) {
            calls.add(1, ordering: .relaxed)
            return 4
        }
        #expect(again == 3 && calls.load(ordering: .relaxed) == 1)
        // While one scrape counts (a slow store), every other gets the cached value at once.
        let release = AsyncStream<Void>.makeStream()
        async let slow = cache.value(now: 200) {
            calls.add(1, ordering: .relaxed)
            for await _ in release.stream { break }
            return 5
        }
        while calls.load(ordering: .relaxed) < 2 { await Task.yield() }
        for _ in 0..<50 {
            let other = await cache.value(now: 200) {
                calls.add(1, ordering: .relaxed)
                return 6
            }
            #expect(other == 3)
        }
        release.continuation.yield()
        #expect(await slow == 5)
        #expect(calls.load(ordering: .relaxed) == 2)
    }
}
