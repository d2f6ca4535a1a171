import Foundation
import TestSupport
import Testing
import TurnkeeperConfiguration
import TurnkeeperCore
import TurnkeeperCredentials

@testable import TurnkeeperRotation

/// coturn's store drifting from turnkeeper's state behind its back, in-process: a store that loses data, one
/// rolled back to before a retirement, and another app's secret beside them.
@Suite("Reconciling coturn's store with turnkeeper's state, in-process", .mayBlock)
struct ReconciliationTests {
    /// A lab after one rotation and the old secret's retirement, with another app's secret in the store.
    private func lab() async throws -> (RotationLab, current: TurnSecret, foreign: TurnSecret) {
        let lab = try RotationLab()
        try await lab.rotation().rotate(.rotate)
        lab.clock.advance(by: 3600 + 61)
        try await lab.rotation().rotate(.resume)
        let current = try #require(try await lab.rotation().currentSecret())
        #expect(lab.store.holds == [current])
        let foreign = try TurnSecret.generate()
        try await lab.store.add(foreign)
        return (lab, current, foreign)
    }

    /// A TURN host of two on an empty in-memory store, after its first sync (epochs of 2 h).
    private func turnHostLab() async throws -> (RotationLab, key: String, turn: any SecretRotation) {
        let lab = try RotationLab()
        lab.store.empty()
        let key = try lab.writeRootKey()
        let turn = lab.epochRotation(role: .turnHost(.init(rootKeyFile: key, epoch: .hours(2))), clock: lab.clock)
        try await turn.rotate(.rotate)
        return (lab, key, turn)
    }

    @Test("A store that lost data: check reports it without changing anything; a repair adds back what is needed")
    func lostData() async throws {
        let (lab, current, _) = try await lab()
        defer { lab.remove() }
        lab.store.empty()
        let report = try #require(try await lab.rotation().reconcile(repair: false))
        #expect(report.restored == [current.fingerprint] && report.removed.isEmpty && !report.repaired)
        #expect(lab.store.holds.isEmpty)
        let repaired = try #require(try await lab.rotation().reconcile(repair: true))
        #expect(repaired.restored == [current.fingerprint] && repaired.repaired)
        #expect(lab.store.holds == [current])
        #expect(try await lab.rotation().reconcile(repair: true)?.isEmpty == true)
    }

    @Test("A store rolled back to before the retirement: the retired secret goes again, the foreign one stays")
    func rolledBack() async throws {
        let (lab, current, foreign) = try await lab()
        defer { lab.remove() }
        // The backup held only the old secret and the foreign one.
        lab.store.empty()
        try await lab.store.add(lab.initial)
        try await lab.store.add(foreign)
        let events = EventLog()
        try await lab.rotation(lab.environment(observe: { events.append($0) })).rotate(.resume)
        #expect(Set(lab.store.holds.map(\.fingerprint)) == [current.fingerprint, foreign.fingerprint])
        let repaired = events.events.compactMap { event -> Reconciliation? in
            if case .storeRepaired(let result) = event { return result }
            return nil
        }
        #expect(repaired.count == 1)
        #expect(repaired.first?.restored == [current.fingerprint])
        #expect(repaired.first?.removed == [lab.initial.fingerprint])
    }

    @Test("Mid-rotation, a pending secret coturn already had is needed too; one not yet added is not")
    func pendingNeeded() async throws {
        let lab = try RotationLab()
        defer { lab.remove() }
        let crashing = lab.environment(observe: { event in
            if event == .saved(step: 2) { throw SimulatedCrash() }
        })
        await #expect(throws: SimulatedCrash.self) { try await lab.rotation(crashing).rotate(.rotate) }
        let pending = try #require(lab.store.holds.first { $0 != lab.initial })
        lab.store.empty()
        let repaired = try #require(try await lab.rotation().reconcile(repair: true))
        #expect(Set(repaired.restored) == [lab.initial.fingerprint, pending.fingerprint])
    }

    @Test("Derived secrets: the TURN host adds back the epochs it holds, and removes a retired epoch brought back")
    func turnHost() async throws {
        let (lab, _, turn) = try await turnHostLab()
        defer { lab.remove() }
        let first = lab.store.holds
        // One epoch start at a time, as the daemon acts (a jump of two would be an absence, held back).
        for _ in 0..<2 {
            lab.clock.advance(by: 7200)
            try await turn.rotate(.rotate)
        }
        let now = Set(lab.store.holds.map(\.fingerprint))
        let retired = Set(first.map(\.fingerprint)).subtracting(now)
        #expect(retired.count == 2)
        // Lost, then rolled back to the first epoch's state.
        lab.store.empty()
        for secret in first { try await lab.store.add(secret) }
        let repaired = try #require(try await turn.reconcile(repair: true))
        #expect(Set(lab.store.holds.map(\.fingerprint)) == now)
        #expect(Set(repaired.removed) == retired)
        // The epoch it holds now that the rollback lacked is added back.
        #expect(Set(repaired.restored) == now.subtracting(first.map(\.fingerprint)))
    }

    @Test("A retired secret back a second time after its removal is left in place and reported, not fought over")
    func backTwice() async throws {
        let (lab, _, _) = try await lab()
        defer { lab.remove() }
        try await lab.store.add(lab.initial)
        #expect(try await lab.rotation().reconcile(repair: true)?.removed == [lab.initial.fingerprint])
        #expect(!lab.store.holds.contains(lab.initial))
        try await lab.store.add(lab.initial)
        let second = try #require(try await lab.rotation().reconcile(repair: true))
        #expect(second.removed.isEmpty && second.leftInPlace == [lab.initial.fingerprint])
        #expect(lab.store.holds.contains(lab.initial))
    }

    @Test("A coturn that refuses every login proves no retirement: the old secret stays listed, and is retried")
    func refusingEverything() async throws {
        let lab = try RotationLab()
        defer { lab.remove() }
        try await lab.rotation().rotate(.rotate)
        lab.clock.advance(by: 3600 + 61)
        lab.probe.refuseAll.store(true, ordering: .relaxed)
        await #expect(throws: TurnkeeperError(.retirementFailed, "")) { try await lab.rotation().rotate(.resume) }
        let status = try await lab.rotation().status()
        #expect(status.retiring.first?.failed?.contains("refuses the current secret") == true, "\(status.retiring)")
        lab.probe.refuseAll.store(false, ordering: .relaxed)
        try await lab.rotation().rotate(.resume)
        #expect(try await lab.rotation().status().retiring.isEmpty)
    }

    @Test("A past epoch's derived secret older than the retired list (an old backup) is recognised and removed")
    func oldBackup() async throws {
        let (lab, key, turn) = try await turnHostLab()
        defer { lab.remove() }
        let derived = EpochSecrets(rootKey: try SecretFile.readRootKey(key), realm: "rotation.test", length: 7200)
        let ancient = try derived.secret(for: derived.epoch(at: lab.clock.now()) - 100)
        try await lab.store.add(ancient)
        let foreign = try TurnSecret.generate()
        try await lab.store.add(foreign)
        let repaired = try #require(try await turn.reconcile(repair: true))
        #expect(repaired.removed == [ancient.fingerprint])
        #expect(lab.store.holds.contains(foreign))
    }
}
