import Synchronization
import TestSupport
import Testing
import TurnkeeperCredentials
import TurnkeeperStores

@testable import TurnkeeperRotation

/// A store behind Redis or PostgreSQL costs a session per read: a run lists it once and keeps what it changes.
@Suite("coturn's store read once per run")
struct StoreReadsTests {
    /// Counts the lists; passes everything to the in-memory store.
    final class CountingStore: CoturnSecretStore {
        let inner: MemoryStore
        private let count = Atomic<Int>(0)

        init(_ inner: MemoryStore) { self.inner = inner }

        var lists: Int { count.load(ordering: .relaxed) }

        func secrets() async throws -> [TurnSecret] {
            count.add(1, ordering: .relaxed)
            return try await inner.secrets()
        }

        func add(_ secret: TurnSecret) async throws { try await inner.add(secret) }
        func remove(_ secret: TurnSecret) async throws { try await inner.remove(secret) }
    }

    @Test("A rotation (adoption, steps 1 to 4) lists the store once, and so does the run that retires the old secret")
    func once() async throws {
        let lab = try RotationLab()
        let counting = CountingStore(lab.store)
        let host = TurnkeeperRotation.Host(lab.configuration, coturnStore: counting, probe: lab.probe)
        try await host.rotation(lab.environment()).rotate(.rotate)
        #expect(counting.lists == 1)
        let new = try #require(try await host.rotation(lab.environment()).currentSecret())
        #expect(lab.store.holds.count == 2 && lab.store.holds.contains(new) && lab.store.holds.contains(lab.initial))

        lab.clock.advance(by: 3600 + 60 + 1)
        try await host.rotation(lab.environment()).rotate(.resume)
        #expect(counting.lists == 2)
        // What the run removed it no longer counts as held: nothing else is removed, nothing added back.
        #expect(lab.store.holds == [new])
    }
}
