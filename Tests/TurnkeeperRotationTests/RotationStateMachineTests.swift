import Foundation
import Synchronization
import TestSupport
import Testing
import TurnkeeperConfiguration
import TurnkeeperConsumers
import TurnkeeperCore
import TurnkeeperCredentials
import TurnkeeperStores
import TurnkeeperSynapse

@testable import TurnkeeperRotation

/// The single host's rotation in-process: an in-memory coturn store, a probe that judges credentials as coturn does,
/// a manual clock, and real files for Synapse (restarted by `/bin/true`). A crash is injected at every point the
/// rotation saves its state, and a second run must finish the rotation with no credential refused on the way.
@Suite("Rotation state machine, in-process", .mayBlock)
struct RotationStateMachineTests {
    /// Every point a rotation from adoption to retirement passes, in order.
    static let crashPoints: [RotationEvent] = [
        .saved(step: 0), .saved(step: 1), .saved(step: 2), .saved(step: 3), .synapseRestartDue,
        .consumerSwitched("synapse"), .saved(step: 4), .saved(step: 5),
    ]

    @Test("A clean rotation passes every crash point once, in order, and retires the old secret when due")
    func cleanRun() async throws {
        let lab = try RotationLab()
        defer { lab.remove() }
        let seen = EventLog()
        let environment = lab.environment(observe: { event in seen.append(event) })
        try await lab.rotation(environment).rotate(.rotate)
        let current = try #require(try await lab.rotation().currentSecret())
        #expect(current != lab.initial)
        #expect(try lab.synapseSecret() == current)
        #expect(lab.store.holds == [lab.initial, current])
        let status = try await lab.rotation().status()
        #expect(status.phase == "idle" && status.retiring.map(\.fingerprint) == [lab.initial.fingerprint])
        // Due after Synapse's lifetime (1h) plus the margin (60 s): not a second earlier.
        lab.clock.advance(by: 3600 + 60 - 1)
        try await lab.rotation(environment).rotate(.resume)
        #expect(lab.store.holds == [lab.initial, current])
        lab.clock.advance(by: 1)
        try await lab.rotation(environment).rotate(.resume)
        #expect(lab.store.holds == [current])
        #expect(seen.events == Self.crashPoints)
    }

    @Test(
        "A crash at any point: what Synapse signs with is accepted throughout, and the next run finishes",
        arguments: crashPoints, [SynapseRestartPolicy.always, .whenConfigurationChanged])
    func crashAndResume(at point: RotationEvent, resumingWith policy: SynapseRestartPolicy) async throws {
        let lab = try RotationLab()
        defer { lab.remove() }
        // At every event of every run: Synapse's files name a secret coturn accepts.
        let crashing = lab.environment(observe: { event in
            try lab.checkSynapseAccepted(at: event)
            if event == point { throw SimulatedCrash() }
        })
        var crashed = false
        do {
            try await lab.rotation(crashing).rotate(.rotate)
            lab.clock.advance(by: 3600 + 60)
            try await lab.rotation(crashing).rotate(.resume)
        } catch is SimulatedCrash {
            crashed = true
        }
        #expect(crashed, "no crash at \(point)")
        // Right after the crash, too; and the secret in use before is still accepted until its retirement is due.
        try lab.checkSynapseAccepted(at: point)
        if point != .saved(step: 5) { #expect(lab.store.holds.contains(lab.initial)) }

        let checking = lab.environment(
            observe: { event in try lab.checkSynapseAccepted(at: event) }, synapseRestarts: policy)
        try await lab.rotation(checking).rotate(.resume)
        let current = try #require(try await lab.rotation().currentSecret())
        #expect(try lab.synapseSecret() == current)
        #expect(lab.store.holds.contains(current))
        let status = try await lab.rotation().status()
        #expect(status.phase == "idle" && status.pending == nil)
        if point == .saved(step: 0) {
            // Only the adoption was done: resuming starts no rotation.
            #expect(current == lab.initial)
        } else {
            #expect(current != lab.initial)
        }
        // Retirement, whenever it is due, leaves exactly the current secret.
        lab.clock.advance(by: 3600 + 60)
        try await lab.rotation(checking).rotate(.resume)
        #expect(lab.store.holds == [current])
        #expect(try await lab.rotation().status().retiring.isEmpty)
    }

    @Test("coturn refusing the new secret: it is taken out again, Synapse keeps the old one, the run fails")
    func verificationFails() async throws {
        let lab = try RotationLab()
        defer { lab.remove() }
        try await lab.rotation().prepare()
        lab.probe.refuseAll.store(true, ordering: .relaxed)
        await #expect {
            try await lab.rotation().rotate(.rotate)
        } throws: { error in
            (error as? TurnkeeperError)?.code == .verificationFailed
        }
        #expect(lab.store.holds == [lab.initial])
        #expect(try lab.synapseSecret() == lab.initial)
        #expect(access(lab.managedFile, F_OK) != 0, "Synapse's file was written although step 3 failed")
        let status = try await lab.rotation().status()
        #expect(status.phase == "idle" && status.pending == nil && status.lastResult?.hasPrefix("failed") == true)
    }

    @Test("A stop request ends the rotation at the next step boundary; the next run resumes it")
    func stopAtBoundary() async throws {
        let lab = try RotationLab()
        defer { lab.remove() }
        let stopping = lab.environment(shouldStop: { true })
        await #expect(throws: RotationStopped.self) { try await lab.rotation(stopping).rotate(.rotate) }
        // Stopped right after the adoption (step 0).
        #expect(try await lab.rotation().status().current == lab.initial.fingerprint)
        await #expect(throws: RotationStopped.self) { try await lab.rotation(stopping).rotate(.rotate) }
        #expect(try await lab.rotation().status().phase == "adding")
        try await lab.rotation().rotate(.resume)
        #expect(try await lab.rotation().status().phase == "idle")
        #expect(try lab.synapseSecret() != lab.initial)
    }

    @Test("The daemon's policy: a failed Synapse restart is not repeated until Synapse's configuration changes")
    func restartOncePerConfiguration() async throws {
        let lab = try RotationLab()
        defer { lab.remove() }
        let restarts = lab.directory.file("restarts")
        lab.setRestartCommand(["/bin/sh", "-c", "echo restart >> \(restarts); exit 1"])
        let daemon = lab.environment(synapseRestarts: .whenConfigurationChanged)
        await #expect {
            try await lab.rotation(daemon).rotate(.rotate)
        } throws: { error in
            (error as? TurnkeeperError)?.code == .commandFailed
        }
        #expect(try await lab.rotation().status().phase == "switching")
        // The retry writes the files again but does not run the command again for the same configuration.
        await #expect {
            try await lab.rotation(daemon).rotate(.resume)
        } throws: { error in
            (error as? TurnkeeperError)?.code == .restartFailed
                && (error as? TurnkeeperError)?.reason.contains("not restarted again") == true
        }
        #expect(try String(contentsOfFile: restarts, encoding: .utf8) == "restart\n")
        // An admin's resume (policy always) runs it again; with a working command it finishes.
        lab.setRestartCommand(["/bin/true"])
        try await lab.rotation().rotate(.resume)
        #expect(try await lab.rotation().status().phase == "idle")
    }

    @Test("Another turnkeeper holding the lock: the run stops before anything, with its own error code")
    func lockHeld() async throws {
        let lab = try RotationLab()
        defer { lab.remove() }
        let held = try await Lock.take(lab.stateDirectory)
        defer { held.release() }
        await #expect {
            try await lab.rotation().rotate(.rotate)
        } throws: { error in
            (error as? TurnkeeperError)?.code == .lockHeld
        }
        #expect(access(lab.stateDirectory + "/state.json", F_OK) != 0)
    }
}

struct SimulatedCrash: Error {}

final class EventLog: Sendable {
    private let log = Mutex<[RotationEvent]>([])

    var events: [RotationEvent] { log.withLock { $0 } }

    func append(_ event: RotationEvent) { log.withLock { $0.append(event) } }
}

/// One Synapse configuration directory (homeserver.yaml with a secret, conf.d), a state directory, a memory store
/// that accepts the initial secret, and the clock.
final class RotationLab: Sendable {
    let directory: TemporaryDirectory
    let initial: TurnSecret
    let store = MemoryStore()
    let clock = ManualClock()
    let probe: MemoryProbe
    private let settings: Mutex<Configuration>

    var configuration: Configuration { settings.withLock { $0 } }

    var stateDirectory: String { directory.file("state") }
    var managedFile: String { directory.file("synapse/conf.d/90-turnkeeper.yaml") }
    private var configPaths: [String] { [directory.file("synapse/homeserver.yaml"), directory.file("synapse/conf.d")] }

    init(restartCommand: [String] = ["/bin/true"]) throws {
        directory = try TemporaryDirectory("rotation-lab")
        initial = try TurnSecret.generate()
        probe = MemoryProbe(store: store, clock: clock)
        try FileManager.default.createDirectory(
            atPath: directory.file("synapse/conf.d"), withIntermediateDirectories: true)
        let secret = initial.withExposedBytes { String(decoding: $0, as: UTF8.self) }
        _ = try directory.write(
            "synapse/homeserver.yaml",
            "server_name: rotation.test\nturn_shared_secret: \"\(secret)\"\nturn_user_lifetime: 1h\n"
                + "turn_uris: [\"turn:memory.test\"]\n",
            mode: 0o640)
        let paths = [directory.file("synapse/homeserver.yaml"), directory.file("synapse/conf.d")]
        settings = Mutex(
            Configuration(
                synapse: .init(
                    configPaths: paths, managedFile: directory.file("synapse/conf.d/90-turnkeeper.yaml"),
                    group: "nogroup", restartCommand: restartCommand),
                coturn: .init(realm: "rotation.test", verifyURI: "turn:memory.test"),
                rotation: .init(margin: .seconds(60), stateDirectory: directory.file("state")),
                path: directory.file("turnkeeper.yaml")))
        // A first run adopts the secret Synapse has: coturn already accepts it, as in a working setup.
        store.holdsInitially(initial)
    }

    func setRestartCommand(_ argv: [String]) { settings.withLock { $0.synapse.restartCommand = argv } }

    /// Adds a file consumer writing `secret: "…"` (YAML) to file-NAME.yaml, its command `argv`.
    func addFileConsumer(_ name: String, lifetime: SynapseDuration, command: [String]? = ["/bin/true"]) throws {
        _ = try directory.write("template-\(name).yaml", "# \(name)\nsecret: {{turn_secret}}\n", mode: 0o600)
        let file = Configuration.Consumer.File(
            path: directory.file("apps/file-\(name).yaml"), template: directory.file("template-\(name).yaml"),
            format: .yaml, command: command, credentialLifetime: lifetime)
        try FileManager.default.createDirectory(atPath: directory.file("apps"), withIntermediateDirectories: true)
        settings.withLock { $0.consumers.append(.init(name: name, kind: .file(file))) }
    }

    func setFileConsumerCommand(_ name: String, _ argv: [String]) {
        settings.withLock { configuration in
            for index in configuration.consumers.indices where configuration.consumers[index].name == name {
                if case .file(var file) = configuration.consumers[index].kind {
                    file.command = argv
                    configuration.consumers[index].kind = .file(file)
                }
            }
        }
    }

    /// Sets the file consumer's verify_command, with a command_timeout of 1 s (the check is polled until then).
    func setFileConsumerVerifyCommand(_ name: String, _ argv: [String]) {
        settings.withLock { configuration in
            for index in configuration.consumers.indices where configuration.consumers[index].name == name {
                if case .file(var file) = configuration.consumers[index].kind {
                    file.verifyCommand = argv
                    file.commandTimeout = .seconds(1)
                    configuration.consumers[index].kind = .file(file)
                }
            }
        }
    }

    /// The secret the file consumer `name` holds, when its file is a rendering with one coturn accepts.
    func fileConsumerSecret(_ name: String) throws -> TurnSecret? {
        guard let bytes = FileManager.default.contents(atPath: directory.file("apps/file-\(name).yaml")) else {
            return nil
        }
        let template = try SecretTemplate(
            bytes: Array("# \(name)\nsecret: {{turn_secret}}\n".utf8), format: .yaml, path: "template")
        return try store.holds.first { try template.render($0) == Array(bytes) }
    }

    func environment(
        shouldStop: @escaping @Sendable () -> Bool = { false },
        observe: @escaping @Sendable (RotationEvent) async throws -> Void = { _ in },
        synapseRestarts: SynapseRestartPolicy = .always
    ) -> RotationEnvironment {
        let clock = clock
        return RotationEnvironment(
            now: { clock.now() }, say: { _ in }, shouldStop: shouldStop, observe: observe,
            synapseRestarts: synapseRestarts)
    }

    func rotation(_ environment: RotationEnvironment? = nil) -> any SecretRotation {
        host.rotation(environment ?? self.environment())
    }

    /// This lab's host: its configuration, with the in-memory store and probe.
    var host: TurnkeeperRotation.Host {
        TurnkeeperRotation.Host(configuration, coturnStore: store, probe: probe)
    }

    /// Synapse's files (what it signs with after any restart) name a secret coturn accepts, or this throws.
    func checkSynapseAccepted(at event: RotationEvent) throws {
        guard let signing = try synapseSecret(), store.holds.contains(signing) else {
            throw TestFailure("at \(event), Synapse's files name a secret coturn does not accept")
        }
    }

    /// The secret Synapse would sign with after a restart now: what its files say.
    func synapseSecret() throws -> TurnSecret? { try SynapseConfig.load(configPaths).turnSecret }

    func remove() { directory.remove() }
}
