import Foundation
import Glibc
import NIOCore
import Synchronization
import TestSupport
import Testing
import TurnkeeperCredentials
import TurnkeeperProbe
import TurnkeeperSynapse
import TurnkeeperTURNClient

/// `turnkeeper rotate` end to end: a real coturn (SQLite store) and a real Synapse restarted by turnkeeper.
@Suite("turnkeeper rotate", .mayBlock, .tags(.live))
struct RotationTests {
    struct Deployment: Sendable {
        let base: TurnkeeperDeployment
        var coturn: CoturnServer { base.coturn }
        var synapse: SynapseServer { base.synapse! }
        var directory: TemporaryDirectory { base.directory }
        var config: String { base.config }
        var original: TurnSecret { base.original }
        var token: String { base.token! }

        func stop() { base.stop() }

        /// What Synapse hands a client right now.
        func synapseCredentials() async throws -> TurnServerResponse {
            guard
                case .credentials(let answer) = try await TurnServerClient.fetch(
                    homeserver: synapse.baseURL, accessToken: token)
            else { throw TestFailure("Synapse handed out no TURN credentials") }
            return answer
        }

        func coturnAccepts(_ username: String, _ password: String) throws -> Bool {
            let file = try directory.write("password-\(UUID().uuidString)", password)
            let output = try TurnkeeperBinary.run([
                "probe", "turn:127.0.0.1:\(coturn.port)?transport=udp", "--username", username, "--password-file", file,
                "--timeout", "10s",
            ])
            return output.status == 0
        }

        func rotate(_ arguments: [String] = []) throws -> ProcessOutput {
            try TurnkeeperBinary.run(["rotate", "--config", config] + arguments, timeout: .seconds(180))
        }

        /// Starts `turnkeeper rotate` with Synapse's restart held, and SIGKILLs it once it has printed
        /// "step N:" (each step is saved before its line, so it dies after step N or later, but before Synapse
        /// restarts), or for "4a" once Synapse's restart has begun (its file written, Synapse not restarted).
        /// Returns the exit status and what it printed.
        func rotateKilled(after step: String) async throws -> (status: Int32?, stdout: String) {
            try base.hold()
            defer { base.release() }
            let held = base.heldRestarts.count
            let output = directory.file("killed-\(UUID().uuidString.prefix(8)).out")
            let process = try ChildProcess(
                TurnkeeperBinary.path, ["rotate", "--config", config], stdoutPath: output, stderrPath: output)
            func printed() -> String { (try? String(contentsOfFile: output, encoding: .utf8)) ?? "" }
            if step == "4a" {
                try await base.waitForHeldRestarts(held + 1, of: process)
            } else {
                let clock = ContinuousClock()
                let deadline = clock.now + .seconds(120)
                while !printed().contains("step \(step):") {
                    guard process.isRunning, clock.now < deadline else {
                        throw TestFailure("no \"step \(step):\" before the kill:\n\(printed())")
                    }
                    try await Task.sleep(for: .milliseconds(5))
                }
            }
            kill(process.pid, SIGKILL)
            let status = process.wait(timeout: .seconds(60))
            // Its held restart dies with it, as on a crashed machine: Synapse is not restarted.
            base.killRestartScripts()
            return (status, printed())
        }

        func status() throws -> [String: Any] { try base.status() }
    }

    /// An admin's existing setup: Synapse with an inline secret that coturn's database already holds.
    static func deploy(
        lifetime: String, interval: String = "7d", configure: (inout TurnkeeperDeployment.Options) -> Void = { _ in }
    ) throws -> Deployment {
        var options = TurnkeeperDeployment.Options()
        options.realSynapse = true
        // The restart command records what it was given, so tests can check no secret reaches it.
        options.recordRestarts = true
        options.turnUserLifetime = lifetime
        options.interval = interval
        configure(&options)
        return Deployment(base: try TurnkeeperDeployment(options))
    }

    @Test("Adopt, rotate, keep old credentials working until retirement, then refuse them; no secret in any output")
    func rotation() async throws {
        let deployment = try Self.deploy(lifetime: "30s")
        defer { deployment.stop() }
        // A client holding credentials from before the rotation, valid for 10 minutes.
        let old = try CredentialMinter(secret: deployment.original)
            .credential(user: "@alice:test.local", expiry: Int64(Date().timeIntervalSince1970) + 600)

        let first = try deployment.rotate()
        #expect(first.status == 0, "\(first)\n\(deployment.synapse.log.suffix(2000))")
        #expect(first.stdout.contains("adopted Synapse's current secret (\(deployment.original.fingerprint))"))
        #expect(first.stdout.contains("step 4"))
        #expect(first.stdout.contains("and coturn accepts them"), "the end-to-end check did not run")
        let synapseNow = try SynapseConfig.load([deployment.synapse.homeserverYAML, deployment.synapse.confD])
        #expect(synapseNow.turnAllowGuests == false)
        #expect(synapseNow.origins["turn_allow_guests"] == deployment.synapse.confD + "/90-turnkeeper.yaml")

        let fresh = try await deployment.synapseCredentials()
        let verdict = try CredentialVerifier(secrets: [deployment.original])
            .verify(username: fresh.username, password: fresh.password, nowSeconds: Int64(Date().timeIntervalSince1970))
        #expect(verdict == .noSecretMatched, "Synapse still signs with the old secret")
        #expect(try deployment.coturnAccepts(fresh.username, fresh.password))
        #expect(try deployment.coturnAccepts(old.username, old.password), "a credential handed out before was refused")

        let status = try deployment.status()
        #expect(status["phase"] as? String == "idle")
        #expect((status["currentAgeSeconds"] as? Int).map { $0 >= 0 && $0 < 600 } == true)
        let retiring = try #require((status["retiring"] as? [[String: Any]])?.first)
        #expect(retiring["fingerprint"] as? String == deployment.original.fingerprint)
        let retiresAt = try #require(retiring["retiresAt"] as? Int)

        // Before it is due, --resume retires nothing (checked only while it is still before: a slow
        // machine may already be past the 30 s lifetime, and then the check would be meaningless).
        var resumeOutput = ""
        if Int(Date().timeIntervalSince1970) < retiresAt - 5 {
            let early = try deployment.rotate(["--resume"])
            #expect(early.status == 0)
            resumeOutput += early.stdout
            if Int(Date().timeIntervalSince1970) < retiresAt {
                #expect(!early.stdout.contains("retired"))
                #expect(try deployment.coturnAccepts(old.username, old.password))
            }
        }

        // Wait for the retirement time itself (turn_user_lifetime 30 s + margin 1 s), bounded.
        let deadline = Date().addingTimeInterval(60)
        while Int(Date().timeIntervalSince1970) <= retiresAt && Date() < deadline {
            try await Task.sleep(for: .milliseconds(250))
        }
        let resumed = try deployment.rotate(["--resume"])
        #expect(resumed.status == 0, "\(resumed)")
        resumeOutput += resumed.stdout
        #expect(resumeOutput.contains("retired \(deployment.original.fingerprint)"))
        #expect(try !deployment.coturnAccepts(old.username, old.password), "the retired secret is still accepted")
        let after = try await deployment.synapseCredentials()
        #expect(try deployment.coturnAccepts(after.username, after.password))

        // Secrets stay out of every output and every world-readable file.
        let stateFile = deployment.directory.file("state/state.json")
        let current = try #require(
            (try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: stateFile))) as? [String: Any])?[
                "current"]
                as? String
        )
        for output in [first, resumed] {
            #expect(!output.stdout.contains(current) && !output.stderr.contains(current))
        }
        #expect(!(try TurnkeeperBinary.run(["status", "--config", deployment.config]).stdout.contains(current)))
        #expect(permissions(of: stateFile) == 0o600)
        #expect(permissions(of: deployment.synapse.confD + "/90-turnkeeper.yaml") == 0o640)
        #expect(
            ownership(of: deployment.synapse.confD + "/90-turnkeeper.yaml").gid == getgrnam("nogroup").pointee.gr_gid)
        let original = deployment.original.withExposedBytes { String(decoding: $0, as: UTF8.self) }
        let argv = try deployment.directory.read("restart-argv.txt")
        let environment = try deployment.directory.read("restart-env.txt")
        #expect(!argv.isEmpty && !environment.isEmpty)
        for secret in [current, original] {
            #expect(!argv.contains(secret) && !environment.contains(secret))
        }
        // Nothing of the test's (or turnkeeper's) environment leaks into the command's: only PATH and LANG.
        #expect(!environment.contains("TURNKEEPER_SYNAPSE_PYTHON"))
    }

    @Test("Killed mid-rotation, the next run converges, and Synapse's credentials work with coturn throughout")
    func crashes() async throws {
        let deployment = try Self.deploy(lifetime: "10m")
        defer { deployment.stop() }
        #expect(try deployment.rotate().status == 0)
        // Killed after step 1, 2 or 3 (or later), and ("4a") between writing Synapse's file and restarting it. The
        // in-process rotation tests crash at every exact step boundary; these prove the binary's own state files.
        for step in ["1", "2", "3", "4a"] {
            let before = try await deployment.synapseCredentials()
            let killed = try await deployment.rotateKilled(after: step)
            #expect(killed.status == 128 + SIGKILL, "step \(step): \(killed)")
            // Whatever was left half-done, what Synapse hands out is accepted by coturn.
            let during = try await deployment.synapseCredentials()
            #expect(try deployment.coturnAccepts(during.username, during.password), "after a kill at step \(step)")
            #expect(try deployment.coturnAccepts(before.username, before.password), "after a kill at step \(step)")

            let resumed = try deployment.rotate(["--resume"])
            #expect(resumed.status == 0, "resume after step \(step): \(resumed)")
            #expect(try deployment.status()["phase"] as? String == "idle")
            let after = try await deployment.synapseCredentials()
            #expect(try deployment.coturnAccepts(after.username, after.password), "after resuming step \(step)")
            #expect(try deployment.coturnAccepts(before.username, before.password), "after resuming step \(step)")
        }
    }

    @Test("Three rotations under load: every credential Synapse hands out is accepted by coturn, before and after")
    func underLoad() async throws {
        let deployment = try Self.deploy(lifetime: "10m")
        defer { deployment.stop() }

        // Adopted first, as an admin's first `turnkeeper rotate --resume` does: its first write switches coturn's
        // database to WAL mode once, and that switch takes an exclusive lock that a login meeting it is refused
        // by (coturn reads without a busy timeout; docs/rotation.md). The rotations under load come after.
        let adopted = try deployment.rotate(["--resume"])
        #expect(adopted.status == 0, "\(adopted)")
        // A credential from before any rotation, which coturn must keep accepting throughout.
        var handedOut: [TurnServerResponse] = [try await deployment.synapseCredentials()]

        // The rotations run on a plain thread: they block on a child process.
        let finished = Flag()
        let rotations = Task.detached {
            try await runOffPool {
                defer { finished.set() }
                // Spaced 3 s apart, so that Synapse is up between its restarts as it is in real life.
                return (1...3).map { _ in
                    let status = (try? deployment.rotate().status) ?? -1
                    usleep(3_000_000)
                    return status
                }
            }
        }

        /// Fetch from Synapse, then allocate on coturn, every 200 ms until the rotations end (at most 600 rounds, 240 s).
        var allocated = 0
        var refused: [String] = []
        var fetchFailures = 0
        let clock = ContinuousClock()
        let end = clock.now + .seconds(240)
        var statuses: [Int32]?
        var rounds = 0
        while rounds < 600 && clock.now < end {
            rounds += 1
            try await Task.sleep(for: .milliseconds(200))
            if finished.isSet { break }
            let answer: TurnServerResponse
            do {
                answer = try await deployment.synapseCredentials()
            } catch {
                fetchFailures += 1  // Synapse restarting: a client would retry.
                try await Task.sleep(for: .milliseconds(100))
                continue
            }
            handedOut.append(answer)
            // The newest credential, and the one from before the rotations, which must stay valid throughout.
            for credential in [answer, handedOut[0]] {
                do {
                    if try await TURNAllocation.succeeds(
                        port: deployment.coturn.port,
                        username: credential.username,
                        password: credential.password
                    ) {
                        allocated += 1
                    } else {
                        refused.append(credential.username)
                    }
                } catch {
                    refused.append("\(credential.username): \(error)")
                }
            }
        }
        if statuses == nil { statuses = try await rotations.value }
        #expect(statuses == [0, 0, 0])
        // However few rounds a loaded machine managed meanwhile: once the rotations are done, what Synapse hands
        // out (signed with the last secret) is accepted too, and so is the credential from before them.
        let last = try await deployment.synapseCredentials()
        handedOut.append(last)
        for credential in [last, handedOut[0]] {
            if try await TURNAllocation.succeeds(
                port: deployment.coturn.port, username: credential.username, password: credential.password)
            {
                allocated += 1
            } else {
                refused.append(credential.username)
            }
        }
        #expect(refused.isEmpty, "coturn refused credentials Synapse had handed out: \(refused)")
        #expect(allocated >= 2)
        // The load spanned the rotations: Synapse handed out credentials signed with the original secret and
        // with later ones (passwords alone would differ anyway, since usernames carry the expiry).
        let original = try CredentialVerifier(secrets: [deployment.original])
        let now = Int64(Date().timeIntervalSince1970)
        let signedWithOriginal = handedOut.filter {
            original.verify(username: $0.username, password: $0.password, nowSeconds: now) != .noSecretMatched
        }
        #expect(!signedWithOriginal.isEmpty, "no credential from before the first rotation")
        #expect(signedWithOriginal.count < handedOut.count, "no credential from after a rotation")
    }

    @Test("A second turnkeeper cannot rotate while one holds the lock")
    func lock() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let state = directory.file("state")
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: false)
        let config = try directory.write(
            "turnkeeper.yaml",
            try TestConfiguration(
                synapse: .init(config: ["/nonexistent"]), coturn: .init(realm: "r", verifyURI: "turn:127.0.0.1:1"),
                rotation: .init(stateDirectory: state)
            ).render())
        let python = try ProcessRunner.which("python3", package: "python3")
        let holder = try ChildProcess(
            python,
            [
                "-c",
                "import fcntl, os, sys, time; f = open(sys.argv[1], 'w'); fcntl.flock(f, fcntl.LOCK_EX); "
                    + "open(sys.argv[2], 'w').close(); time.sleep(20)",
                state + "/lock", directory.file("locked"),
            ]
        )
        defer { holder.terminate() }
        let deadline = Date().addingTimeInterval(10)
        while !FileManager.default.fileExists(atPath: directory.file("locked")) && Date() < deadline { usleep(10_000) }
        let output = try TurnkeeperBinary.run(["rotate", "--config", config])
        #expect(output.status == 1)
        #expect(output.stderr.contains("another turnkeeper holds"))
    }
}
