import Foundation
import TestSupport
import Testing
import TurnkeeperConfiguration
import TurnkeeperConsumers
import TurnkeeperCore
import TurnkeeperCredentials

@testable import TurnkeeperRotation

/// Several consumers in one rotation, in-process: Synapse and two file consumers (real files, `/bin/true` as
/// their command), an in-memory coturn and a manual clock.
@Suite("Rotation with several consumers, in-process", .mayBlock)
struct ConsumerRotationTests {
    private func lab() throws -> RotationLab {
        let lab = try RotationLab()
        try lab.addFileConsumer("short", lifetime: .minutes(30))
        // The longest lifetime decides the retirement: 2 h, beyond Synapse's 1 h.
        try lab.addFileConsumer("long", lifetime: .hours(2))
        return lab
    }

    /// Every consumer (those that have a file yet) signs with a secret coturn accepts.
    private func checkAll(_ lab: RotationLab, at event: RotationEvent) throws {
        try lab.checkSynapseAccepted(at: event)
        for name in ["short", "long"] {
            let path = lab.directory.file("apps/file-\(name).yaml")
            guard FileManager.default.fileExists(atPath: path) else { continue }
            guard try lab.fileConsumerSecret(name) != nil else {
                throw TestFailure("at \(event), consumer \(name)'s file names a secret coturn does not accept")
            }
        }
    }

    @Test(
        "A crash after any consumer's switch: the next run switches the rest, and nothing is refused on the way",
        arguments: ["synapse", "short", "long"])
    func crashBetweenConsumers(after name: String) async throws {
        let lab = try lab()
        defer { lab.remove() }
        let crashing = lab.environment(observe: { event in
            try checkAll(lab, at: event)
            if event == .consumerSwitched(name) { throw SimulatedCrash() }
        })
        await #expect(throws: SimulatedCrash.self) { try await lab.rotation(crashing).rotate(.rotate) }
        #expect(lab.store.holds.contains(lab.initial))
        let status = try await lab.rotation().status()
        #expect(status.phase == "switching")

        let events = EventLog()
        let resuming = lab.environment(observe: { event in
            try checkAll(lab, at: event)
            events.append(event)
        })
        try await lab.rotation(resuming).rotate(.resume)
        let all = ["synapse", "short", "long"]
        // Only those after the crash are switched again.
        let switchedAgain = events.events.compactMap { event -> String? in
            if case .consumerSwitched(let switched) = event { return switched }
            return nil
        }
        #expect(switchedAgain == Array(all[(all.firstIndex(of: name)! + 1)...]))
        let current = try #require(try await lab.rotation().currentSecret())
        #expect(current != lab.initial)
        #expect(try lab.synapseSecret() == current)
        #expect(try lab.fileConsumerSecret("short") == current)
        #expect(try lab.fileConsumerSecret("long") == current)
    }

    @Test("The old secret retires only after the longest lifetime among the consumers, plus the margin")
    func longestLifetimeDecides() async throws {
        let lab = try lab()
        defer { lab.remove() }
        try await lab.rotation().rotate(.rotate)
        let retiring = try #require(try await lab.rotation().status().retiring.first)
        #expect(retiring.retiresAt == lab.clock.now() + 7200 + 60)
        // Past Synapse's hour, the old secret stays: the "long" consumer's credentials are still valid.
        lab.clock.advance(by: 3600 + 61)
        try await lab.rotation().rotate(.resume)
        #expect(lab.store.holds.contains(lab.initial))
        lab.clock.advance(by: 3600)
        try await lab.rotation().rotate(.resume)
        #expect(!lab.store.holds.contains(lab.initial))
    }

    @Test("A consumer whose command fails: the rotation stops there, coturn keeps both secrets, resume finishes")
    func failingCommand() async throws {
        let lab = try RotationLab()
        defer { lab.remove() }
        try lab.addFileConsumer("app", lifetime: .hours(1), command: ["/bin/false"])
        // Brought onto the adopted secret first: failing there, nothing else starts.
        await #expect(throws: TurnkeeperError(.restartFailed, "")) { try await lab.rotation().rotate(.rotate) }
        #expect(try await lab.rotation().status().phase == "idle")
        #expect(lab.store.holds == [lab.initial])
        lab.setFileConsumerCommand("app", ["/bin/true"])
        try await lab.rotation().rotate(.resume)
        #expect(try lab.fileConsumerSecret("app") == lab.initial)
        // In step 4, after Synapse: the rotation stops at the app, with both secrets kept.
        lab.setFileConsumerCommand("app", ["/bin/false"])
        await #expect(throws: TurnkeeperError(.restartFailed, "")) { try await lab.rotation().rotate(.rotate) }
        #expect(try await lab.rotation().status().phase == "switching")
        #expect(lab.store.holds.count == 2)
        // Synapse switched already and is not switched again; the app's command now works.
        lab.setFileConsumerCommand("app", ["/bin/true"])
        try await lab.rotation().rotate(.resume)
        let current = try #require(try await lab.rotation().currentSecret())
        #expect(current != lab.initial)
        #expect(try lab.fileConsumerSecret("app") == current)
    }

    @Test("A file the template does not make is never replaced: the rotation refuses before step 1")
    func foreignFileRefused() async throws {
        let lab = try RotationLab()
        defer { lab.remove() }
        try lab.addFileConsumer("app", lifetime: .hours(1))
        _ = try lab.directory.write("apps/file-app.yaml", "someone: else's\n", mode: 0o600)
        await #expect(throws: TurnkeeperError(.unwritableFile, "")) { try await lab.rotation().rotate(.rotate) }
        #expect(lab.store.holds == [lab.initial])
        #expect(
            try String(contentsOfFile: lab.directory.file("apps/file-app.yaml"), encoding: .utf8) == "someone: else's\n"
        )
        #expect(try await lab.rotation().status().pending == nil)
    }

    @Test(
        "An app listed after a rotation: the next run, even --resume, brings it onto the current secret, and the old one waits for it"
    )
    func listedLate() async throws {
        let lab = try RotationLab()
        defer { lab.remove() }
        try await lab.rotation().rotate(.rotate)
        let current = try #require(try await lab.rotation().currentSecret())
        // The app signs with the old secret, which retires an hour after the rotation.
        try lab.addFileConsumer("late", lifetime: .hours(3))
        let template = try SecretTemplate(
            bytes: Array("# late\nsecret: {{turn_secret}}\n".utf8), format: .yaml, path: "t")
        _ = FileManager.default.createFile(
            atPath: lab.directory.file("apps/file-late.yaml"), contents: Data(try template.render(lab.initial)))
        lab.clock.advance(by: 600)
        try await lab.rotation().rotate(.resume)
        #expect(try lab.fileConsumerSecret("late") == current)
        let retiring = try #require(try await lab.rotation().status().retiring.first)
        #expect(retiring.retiresAt == lab.clock.now() + 3 * 3600 + 60)
        // Past Synapse's hour, the old secret stays for the app's credentials.
        lab.clock.advance(by: 3600)
        try await lab.rotation().rotate(.resume)
        #expect(lab.store.holds.contains(lab.initial))
        // Listed once: the next run does nothing more for it.
        let events = EventLog()
        try await lab.rotation(lab.environment(observe: { events.append($0) })).rotate(.resume)
        #expect(events.events.isEmpty)
    }

    @Test(
        "verify_command: an answer signed with another secret, or no JSON, stops the switch with the reason",
        arguments: [
            (#"{"iceServers": [{"username": "1:x", "credential": "bm90IHNpZ25lZA=="}]}"#, "not signed with"),
            ("not json", "is not JSON"),
        ])
    func verifyCommandRefuses(answer: String, reason: String) async throws {
        let lab = try RotationLab()
        defer { lab.remove() }
        try lab.addFileConsumer("app", lifetime: .hours(1))
        try await lab.rotation().rotate(.resume)
        let script = try lab.directory.write("answer.sh", "#!/bin/sh\necho '\(answer)'\n", mode: 0o755)
        lab.setFileConsumerVerifyCommand("app", ["/bin/sh", script])
        await #expect {
            try await lab.rotation().rotate(.rotate)
        } throws: { error in
            let error = error as? TurnkeeperError
            return error?.code == .verificationFailed && error?.reason.contains(reason) == true
        }
        #expect(try await lab.rotation().status().phase == "switching")
        #expect(lab.store.holds.contains(lab.initial))
    }
}
