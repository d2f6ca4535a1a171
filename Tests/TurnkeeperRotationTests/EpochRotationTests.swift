import Foundation
import TestSupport
import Testing
import TurnkeeperConfiguration
import TurnkeeperCore
import TurnkeeperCredentials
import TurnkeeperSynapse

@testable import TurnkeeperRotation

/// Both hosts of a separate TURN host, in-process: the TURN host's rotation fills an in-memory coturn store, the
/// Synapse host's switches real Synapse files, each on its own manual clock; the Synapse host's probe judges
/// credentials against the TURN host's store, as coturn would.
@Suite("Derived secrets, both hosts in-process", .mayBlock)
struct EpochRotationTests {
    static let epoch: Int64 = 7200

    @Test(
        "Five epochs, each host acting at its own epoch start, clocks together or 30 min apart: Synapse's secret is one coturn holds",
        arguments: [Int64(0), 1800, -1800])
    func fiveEpochs(skew: Int64) async throws {
        let lab = try RotationLab()
        defer { lab.remove() }
        lab.store.empty()
        let key = try lab.writeRootKey()
        let turnClock = ManualClock()
        let turn = lab.epochRotation(
            role: .turnHost(.init(rootKeyFile: key, epoch: .seconds(Self.epoch))), clock: turnClock)
        let synapse = lab.epochRotation(
            role: .synapseHost(.init(rootKeyFile: key, epoch: .seconds(Self.epoch))), clock: lab.clock)
        let derived = EpochSecrets(rootKey: try SecretFile.readRootKey(key), realm: "rotation.test", length: Self.epoch)
        // Real time: each host acts when its own clock starts an epoch (the TURN host's reads real time + skew).
        // The TURN host was set up an epoch earlier. At a tie, the order alternates.
        let start = lab.clock.now()
        var events: [(time: Int64, order: Int, turnHost: Bool)] = [(start - Self.epoch - skew, 0, true)]
        for k in Int64(0)..<5 {
            events.append((start + k * Self.epoch - skew, Int(k % 2), true))
            events.append((start + k * Self.epoch, Int(1 - k % 2), false))
        }
        events.sort { ($0.time, $0.order) < ($1.time, $1.order) }
        var synapseSynced = false
        for event in events {
            lab.clock.set(to: event.time)
            turnClock.set(to: event.time + skew)
            if event.turnHost {
                try await turn.rotate(.rotate)
                let now = derived.epoch(at: turnClock.now())
                // The TURN host holds exactly the previous, current and next epochs' secrets, and nothing else.
                #expect(
                    Set(lab.store.holds.map(\.fingerprint))
                        == Set(try ((now - 1)...(now + 1)).map { try derived.secret(for: $0).fingerprint }))
            } else {
                try await synapse.rotate(.rotate)
                synapseSynced = true
                let signing = try #require(try lab.synapseSecret())
                #expect(signing == (try derived.secret(for: derived.epoch(at: lab.clock.now()))))
                #expect(try await synapse.status().epoch == derived.epoch(at: lab.clock.now()))
            }
            if synapseSynced {
                let signing = try #require(try lab.synapseSecret())
                #expect(
                    lab.store.holds.contains(signing), "at \(event.time - start) s: coturn refuses Synapse's secret")
            }
        }
    }

    @Test("Consumers on either host switch to each epoch's secret once, and coturn always accepts what they sign with")
    func consumersOnBothHosts() async throws {
        let lab = try RotationLab()
        defer { lab.remove() }
        lab.store.empty()
        try lab.addFileConsumer("onturn", lifetime: .minutes(30))
        try lab.addFileConsumer("onsynapse", lifetime: .minutes(30))
        let key = try lab.writeRootKey()
        let derivation = Configuration.Derivation(rootKeyFile: key, epoch: .seconds(Self.epoch))
        let turn = lab.epochRotation(role: .turnHost(derivation), clock: lab.clock, consumers: ["onturn"])
        let synapse = lab.epochRotation(role: .synapseHost(derivation), clock: lab.clock, consumers: ["onsynapse"])
        let derived = EpochSecrets(rootKey: try SecretFile.readRootKey(key), realm: "rotation.test", length: Self.epoch)
        let switched = EventLog()
        for k in Int64(0)..<4 {
            try await turn.rotate(.rotate)
            try await synapse.rotate(.rotate)
            let epochSecret = try derived.secret(for: derived.epoch(at: lab.clock.now()))
            #expect(try lab.fileConsumerSecret("onturn") == epochSecret, "epoch +\(k): the TURN host's consumer")
            #expect(try lab.fileConsumerSecret("onsynapse") == epochSecret, "epoch +\(k): the Synapse host's consumer")
            #expect(try lab.synapseSecret() == epochSecret)
            // Within the epoch, a second run switches nothing again.
            let again = RotationEnvironment(
                now: { lab.clock.now() }, say: { _ in }, observe: { switched.append($0) })
            var configuration = lab.configuration
            configuration.consumers = configuration.consumers.filter { $0.name == "onsynapse" }
            configuration.role = .synapseHost(derivation)
            configuration.rotation.stateDirectory = lab.directory.file("state-synapse")
            try await Host(configuration, coturnStore: lab.store, probe: lab.probe).rotation(again)
                .rotate(.rotate)
            #expect(switched.events.isEmpty)
            lab.clock.advance(by: Self.epoch)
        }
    }

    @Test(
        "The TURN host away for three epochs: on return it keeps the epoch Synapse still signs with until it caught up")
    func turnHostAway() async throws {
        let lab = try RotationLab()
        defer { lab.remove() }
        lab.store.empty()
        let key = try lab.writeRootKey()
        let derivation = Configuration.Derivation(rootKeyFile: key, epoch: .seconds(Self.epoch))
        let turn = lab.epochRotation(role: .turnHost(derivation), clock: lab.clock)
        let synapse = lab.epochRotation(role: .synapseHost(derivation), clock: lab.clock)
        let derived = EpochSecrets(rootKey: try SecretFile.readRootKey(key), realm: "rotation.test", length: Self.epoch)
        lab.clock.set(to: derived.start(of: derived.epoch(at: lab.clock.now())))
        let first = derived.epoch(at: lab.clock.now())
        try await turn.rotate(.rotate)
        try await synapse.rotate(.rotate)
        /// Synapse's secret is one coturn holds.
        func synapseAccepted(_ when: String) throws {
            let signing = try #require(try lab.synapseSecret())
            #expect(lab.store.holds.contains(signing), "\(when): coturn refuses what Synapse signs with")
        }
        // The TURN host is away: the Synapse host moves to first+1 (coturn has it as "next"), then cannot move on.
        for k in Int64(1)...3 {
            lab.clock.set(to: derived.start(of: first + k))
            if k == 1 {
                try await synapse.rotate(.rotate)
            } else {
                await #expect(throws: TurnkeeperError(.verificationFailed, "")) { try await synapse.rotate(.rotate) }
            }
            try synapseAccepted("epoch +\(k)")
        }
        #expect(try lab.synapseSecret() == (try derived.secret(for: first + 1)))
        // The TURN host comes back 10 min into first+3: Synapse still signs with first+1, which stays.
        lab.clock.advance(by: 600)
        try await turn.rotate(.rotate)
        try synapseAccepted("the TURN host back")
        #expect(lab.store.holds.contains(try derived.secret(for: first + 3)))
        // The Synapse host's retry switches it; what it handed out just before stays valid its lifetime.
        lab.clock.advance(by: 1)
        try await synapse.rotate(.rotate)
        #expect(try lab.synapseSecret() == (try derived.secret(for: first + 3)))
        #expect(lab.store.holds.contains(try derived.secret(for: first + 1)))
        // Held until catch_up (retry_max 1 h + an epoch) after first+2's secret arrived, then retired.
        lab.clock.set(to: derived.start(of: first + 4))
        try await turn.rotate(.rotate)
        #expect(lab.store.holds.contains(try derived.secret(for: first + 1)))
        lab.clock.set(to: derived.start(of: first + 5))
        try await turn.rotate(.rotate)
        #expect(!lab.store.holds.contains(try derived.secret(for: first + 1)))
    }

    @Test("keep_previous_epochs: 3 lets the Synapse host be away three epochs with its secret still accepted")
    func synapseHostAway() async throws {
        let lab = try RotationLab()
        defer { lab.remove() }
        lab.store.empty()
        let key = try lab.writeRootKey()
        let derivation = Configuration.Derivation(rootKeyFile: key, epoch: .seconds(Self.epoch), keepPreviousEpochs: 3)
        let turn = lab.epochRotation(role: .turnHost(derivation), clock: lab.clock)
        let synapse = lab.epochRotation(role: .synapseHost(derivation), clock: lab.clock)
        let derived = EpochSecrets(rootKey: try SecretFile.readRootKey(key), realm: "rotation.test", length: Self.epoch)
        let first = derived.epoch(at: lab.clock.now())
        try await turn.rotate(.rotate)
        try await synapse.rotate(.rotate)
        let signing = try #require(try lab.synapseSecret())
        for k in Int64(1)...3 {
            lab.clock.set(to: derived.start(of: first + k) + 1)
            try await turn.rotate(.rotate)
            #expect(lab.store.holds.contains(signing), "epoch +\(k)")
            #expect(lab.store.holds.count == 5)
        }
        // A fourth epoch away is beyond the window: the documented gap.
        lab.clock.set(to: derived.start(of: first + 4) + 1)
        try await turn.rotate(.rotate)
        #expect(!lab.store.holds.contains(signing))
    }

    @Test("The Synapse host keeps its secret when coturn refuses this epoch's: the hosts disagree, and it says so")
    func turnHostMissing() async throws {
        let lab = try RotationLab()
        defer { lab.remove() }
        let key = try lab.writeRootKey()
        let synapse = lab.epochRotation(
            role: .synapseHost(.init(rootKeyFile: key, epoch: .seconds(Self.epoch))), clock: lab.clock)
        await #expect {
            try await synapse.rotate(.rotate)
        } throws: { error in
            (error as? TurnkeeperError)?.code == .verificationFailed
                && (error as? TurnkeeperError)?.reason.contains("same root key") == true
        }
        #expect(try lab.synapseSecret() == lab.initial)
    }
}

extension RotationLab {
    /// A fresh root key in the lab, its path.
    func writeRootKey() throws -> String {
        try directory.write(
            "root-key", try TurnSecret.generate().withExposedBytes { String(decoding: $0, as: UTF8.self) } + "\n")
    }

    /// `consumers`: the names of the lab's file consumers this host has (default: none).
    func epochRotation(role: Configuration.Role, clock: ManualClock, consumers: [String] = []) -> any SecretRotation {
        var configuration = self.configuration
        configuration.consumers = configuration.consumers.filter { consumers.contains($0.name) }
        configuration.role = role
        configuration.rotation.stateDirectory = directory.file("state-\(role.name)")
        let environment = RotationEnvironment(now: { clock.now() }, say: { _ in })
        return Host(configuration, coturnStore: store, probe: MemoryProbe(store: store, clock: clock))
            .rotation(environment)
    }
}
