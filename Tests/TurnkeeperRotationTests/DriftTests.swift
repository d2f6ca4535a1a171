import Foundation
import Synchronization
import TestSupport
import Testing
import TurnkeeperConfiguration
import TurnkeeperCore
import TurnkeeperCredentials
import TurnkeeperExecution
import TurnkeeperSynapse

@testable import TurnkeeperRotation

/// Synapse's files changed behind turnkeeper's back (issue 26): an admin's line put back in a conf.d file that
/// sorts after turnkeeper's, an older turnkeeper file restored, a hand-edited state.json. Whatever the state
/// says, no secret Synapse's files name is ever taken out of coturn, and each advised fix works.
@Suite("Drift: the world over the state file", .mayBlock)
struct DriftTests {
    /// The admin's own conf.d file, which sorts after 90-turnkeeper.yaml, so its keys win.
    static let override = "synapse/conf.d/example.com.yaml"

    func writeOverride(_ lab: RotationLab, _ secret: TurnSecret) throws {
        let text = secret.withExposedBytes { String(decoding: $0, as: UTF8.self) }
        _ = try lab.directory.write(Self.override, "turn_user_lifetime: 1h\nturn_shared_secret: \"\(text)\"\n")
    }

    @Test("A secret line put back after setup: it is never retired, the run names the file and line, and the fix works")
    func overrideComesBack() async throws {
        let lab = try RotationLab()
        defer { lab.remove() }
        let restarts = lab.directory.file("restarts")
        lab.setRestartCommand(["/bin/sh", "-c", "echo restart >> \(restarts)"])
        try await lab.rotation().rotate(.rotate)
        let current = try #require(try await lab.rotation().currentSecret())
        // The admin's snippet is applied again: Synapse signs with the secret it had before turnkeeper.
        try writeOverride(lab, lab.initial)
        #expect(try lab.synapseSecret() == lab.initial)
        let signing = try #require(try await lab.host.synapseSigning(rotating: false))
        let drift = try #require(signing.drift)
        #expect(drift.contains("example.com.yaml, line 2"), "\(drift)")
        #expect(drift.contains("Remove that line"), "\(drift)")
        #expect(signing.secret == lab.initial)

        lab.clock.advance(by: 3600 + 60)
        await #expect {
            try await lab.rotation().rotate(.resume)
        } throws: { error in
            let reason = (error as? TurnkeeperError)?.reason ?? ""
            return (error as? TurnkeeperError)?.code == .invalidConfiguration
                && reason.contains("example.com.yaml, line 2") && !reason.contains(secretText(lab.initial))
        }
        #expect(lab.store.holds.contains(lab.initial), "the secret Synapse's files name was retired")
        // The daemon's own retries and a new rotation stop there too, and keep it.
        await #expect(throws: TurnkeeperError.self) { try await lab.rotation().rotate(.rotate) }
        #expect(lab.store.holds.contains(lab.initial))
        #expect(try await lab.rotation().currentSecret() == current)

        // The fix as advised: remove the line, then `rotate --resume`. Synapse is restarted onto the current
        // secret (it may run with the override), and the old secret retires only after that restart's lifetime.
        let before = try String(contentsOfFile: restarts, encoding: .utf8).count
        try FileManager.default.removeItem(atPath: lab.directory.file(Self.override))
        #expect(try #require(try await lab.host.synapseSigning(rotating: false)).drift == nil)
        try await lab.rotation().rotate(.resume)
        #expect(try String(contentsOfFile: restarts, encoding: .utf8).count > before, "Synapse was not restarted")
        #expect(lab.store.holds.contains(lab.initial))
        lab.clock.advance(by: 3600 + 60)
        try await lab.rotation().rotate(.resume)
        #expect(lab.store.holds == [current])
    }

    @Test("An older turnkeeper file restored: Synapse is switched back, and the secret it named waits its lifetime")
    func restoredManagedFile() async throws {
        let lab = try RotationLab()
        defer { lab.remove() }
        try await lab.rotation().rotate(.rotate)
        let first = try #require(try await lab.rotation().currentSecret())
        let backup = try Data(contentsOf: URL(fileURLWithPath: lab.managedFile))
        lab.clock.advance(by: 3600 + 60)
        try await lab.rotation().rotate(.rotate)
        let second = try #require(try await lab.rotation().currentSecret())
        #expect(second != first && lab.store.holds.contains(first))
        // The backup of 90-turnkeeper.yaml comes back once `first` is due to retire.
        try backup.write(to: URL(fileURLWithPath: lab.managedFile))
        #expect(try lab.synapseSecret() == first)
        let reread = try #require(try await lab.host.synapseSigning(rotating: false))
        let restored = try #require(reread.drift)
        // turnkeeper's own file decides: no line to remove, it is written again.
        #expect(restored.contains("writes") && !restored.contains("Remove that line"), "\(restored)")
        lab.clock.advance(by: 3600 + 60)
        try await lab.rotation().rotate(.resume)
        #expect(try lab.synapseSecret() == second)
        #expect(lab.store.holds.contains(first), "retired while Synapse may still hand out credentials signed with it")
        #expect(try #require(try await lab.host.synapseSigning(rotating: false)).drift == nil)
        lab.clock.advance(by: 3600 + 60)
        try await lab.rotation().rotate(.resume)
        #expect(lab.store.holds == [second])
    }

    @Test("A hand-edited state.json that retires the secret Synapse signs with: it stays in coturn")
    func editedState() async throws {
        let lab = try RotationLab()
        defer { lab.remove() }
        try await lab.rotation().rotate(.rotate)
        let current = try #require(try await lab.rotation().currentSecret())
        // The state now says the secret Synapse's files name is an old one, due at once.
        let path = lab.stateDirectory + "/state.json"
        var state = try JSONDecoder().decode(RotationState.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        let other = try TurnSecret.generate()
        try await lab.store.add(other)
        state.current = other
        state.retiring = [.init(value: current, after: 0)]
        try await StateFile<RotationState>(directory: lab.stateDirectory, name: "state.json").save(state)
        // The guard alone: what Synapse's files name is kept, whatever the state says.
        let keepers = await (try #require(lab.rotation() as? SingleHostRotation)).keepersForTest(of: current)
        #expect(keepers?.contains("Synapse signs with it") == true, "\(keepers ?? "nil")")
        try await lab.rotation().rotate(.resume)
        // Synapse was switched to what the state names, and `current` waits out the lifetime before it goes.
        #expect(try lab.synapseSecret() == other)
        #expect(lab.store.holds.contains(current))
    }

    @Test("A retired secret back in coturn that Synapse's files name again is not removed by the repair")
    func reconciliationKeepsWhatSynapseUses() async throws {
        let lab = try RotationLab()
        defer { lab.remove() }
        try await lab.rotation().rotate(.rotate)
        lab.clock.advance(by: 3600 + 60)
        try await lab.rotation().rotate(.resume)
        let current = try #require(try await lab.rotation().currentSecret())
        #expect(lab.store.holds == [current])
        // The admin puts the old secret back in Synapse and in coturn.
        try writeOverride(lab, lab.initial)
        try await lab.store.add(lab.initial)
        let result = try #require(try await lab.rotation().reconcile(repair: true))
        #expect(result.removed.isEmpty && result.keptInUse.count == 1, "\(result.summary)")
        #expect(result.summary.contains("example.com.yaml, line 2"))
        #expect(lab.store.holds.contains(lab.initial))
    }

    @Test("A file consumer's file edited by hand still holding the old secret keeps it in coturn")
    func handEditedConsumerFile() async throws {
        let lab = try RotationLab()
        defer { lab.remove() }
        try lab.addFileConsumer("talk", lifetime: .seconds(60))
        try await lab.rotation().rotate(.rotate)
        let current = try #require(try await lab.rotation().currentSecret())
        #expect(try lab.fileConsumerSecret("talk") == current)
        // The admin edits the app's file by hand: the old secret, in a shape the template does not make.
        let old = secretText(lab.initial)
        _ = try lab.directory.write("apps/file-talk.yaml", "# by hand\nsecret:   '\(old)'\n", mode: 0o600)
        lab.clock.advance(by: 3600 + 60)
        // Whether the run switches the app back (then the old secret waits out its lifetime) or refuses the file
        // it does not recognise, the secret still written in it stays in coturn.
        _ = try? await lab.rotation().rotate(.resume)
        #expect(lab.store.holds.contains(lab.initial))
        let status = try await lab.rotation().status()
        #expect(status.retiring.map(\.fingerprint) == [lab.initial.fingerprint])
    }

    @Test("`rotate --resume` with nothing to do says so")
    func nothingToResume() async throws {
        let lab = try RotationLab()
        defer { lab.remove() }
        try await lab.rotation().rotate(.rotate)
        let said = Mutex<[String]>([])
        var environment = lab.environment()
        environment.say = { line in said.withLock { $0.append(line) } }
        try await lab.rotation(environment).rotate(.resume)
        let lines = said.withLock { $0 }
        #expect(lines.contains { $0.hasPrefix("nothing to resume: no rotation is in progress") }, "\(lines)")
        #expect(lines.contains { $0.contains("retirement is due at") }, "\(lines)")
    }
}

func secretText(_ secret: TurnSecret) -> String {
    secret.withExposedBytes { String(decoding: $0, as: UTF8.self) }
}

extension SingleHostRotation {
    /// The retirement guard alone, for tests.
    func keepersForTest(of secret: TurnSecret) async -> String? {
        guard let saved = try? await state.load() else { return nil }
        return await keepers(of: secret, saved)
    }
}

@Suite("Small untruths (issue 26)", .mayBlock)
struct SmallUntruthTests {
    @Test("A command that leaves a process behind holding its output: its own exit ends the wait, not a timeout")
    func backgroundChild() async throws {
        // The child outlives the timeout: waiting for the pipe's end would report the command as timed out.
        let output = try await CommandRunner.run(
            ["/bin/sh", "-c", "sleep 30 & echo answered"], what: "verify", timeoutSeconds: 5, capture: true)
        #expect(String(decoding: output, as: UTF8.self) == "answered\n")
    }

    @Test("A state directory that is a file is an error, not \"no rotation yet\"")
    func stateDirectoryIsAFile() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let file = try directory.write("state", "not a directory\n")
        await #expect {
            _ = try await StateFile<RotationState>(directory: file, name: "state.json").load()
        } throws: { error in
            (error as? TurnkeeperError)?.reason.contains("must be a directory") == true
        }
    }
}
