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
@Suite("turnkeeper rotate")
struct RotationTests {
    struct Deployment: Sendable {
        let coturn: CoturnServer
        let synapse: SynapseServer
        let directory: TemporaryDirectory
        let config: String
        let original: TurnSecret
        let token: String

        func stop() {
            synapse.stop()
            coturn.stop()
            directory.remove()
        }

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

        func rotate(_ arguments: [String] = [], abortAfter step: String? = nil) throws -> ProcessOutput {
            try TurnkeeperBinary.run(
                ["rotate", "--config", config] + arguments,
                timeout: .seconds(180),
                environment: step.map { ["TURNKEEPER_TEST_ABORT_AFTER_STEP": $0] } ?? [:]
            )
        }

        func status() throws -> [String: Any] {
            let output = try TurnkeeperBinary.run(["status", "--config", config, "--json"])
            return try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any] ?? [:]
        }
    }

    /// An admin's existing setup: Synapse with an inline secret that coturn's database already holds.
    static func deploy(lifetime: String, interval: String = "7d", extraConfig: String = "") throws -> Deployment {
        let original = try TurnSecret.generate()
        let text = original.withExposedBytes { String(decoding: $0, as: UTF8.self) }
        let coturn = try CoturnServer(secrets: [])
        let synapse = try SynapseServer(
            confFiles: [
                "10-admin.yaml": """
                turn_uris: ["turn:127.0.0.1:\(coturn.port)?transport=udp"]
                turn_shared_secret: "\(text)"
                turn_user_lifetime: \(lifetime)
                """
            ],
            supervised: true
        )
        let directory = try TemporaryDirectory()
        let token = try synapse.register("alice")
        let tokenFile = try directory.write("token", token + "\n")
        // The restart command records what it was given, so tests can check no secret reaches it.
        let restart = try directory.write(
            "restart-and-record.sh",
            """
            echo "$0 $@" >>\(directory.file("restart-argv.txt"))
            env >>\(directory.file("restart-env.txt"))
            exec \(synapse.restartCommand.joined(separator: " "))
            """
        )
        let config = try directory.write(
            "turnkeeper.yaml",
            """
            synapse:
              config: [\(synapse.homeserverYAML), \(synapse.confD)]
              managed_file: \(synapse.confD)/90-turnkeeper.yaml
              mode: inline
              group: nogroup
              restart_command: [/bin/bash, \(restart)]
              health_url: \(synapse.baseURL)/health
              homeserver: \(synapse.baseURL)
              access_token_file: \(tokenFile)
              turn_allow_guests: false
            coturn:
              realm: \(coturn.realm)
              verify_uri: turn:127.0.0.1:\(coturn.port)?transport=udp
              store: sqlite
              database: \(coturn.userDatabase)
            rotation:
              interval: \(interval)
              margin: 1s
              state_directory: \(directory.file("state"))
            \(extraConfig)
            """
        )
        return Deployment(
            coturn: coturn,
            synapse: synapse,
            directory: directory,
            config: config,
            original: original,
            token: token
        )
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

    @Test("Killed after any step, the next run converges, and Synapse's credentials work with coturn throughout")
    func crashes() async throws {
        let deployment = try Self.deploy(lifetime: "10m")
        defer { deployment.stop() }
        #expect(try deployment.rotate().status == 0)
        // "4a": killed between writing Synapse's file and restarting Synapse.
        for step in ["1", "2", "3", "4a", "4"] {
            let before = try await deployment.synapseCredentials()
            let aborted = try deployment.rotate(abortAfter: step)
            #expect(aborted.status == 99, "step \(step): \(aborted)")
            // Whatever was left half-done, what Synapse hands out is accepted by coturn.
            let during = try await deployment.synapseCredentials()
            #expect(try deployment.coturnAccepts(during.username, during.password), "after abort at step \(step)")
            #expect(try deployment.coturnAccepts(before.username, before.password), "after abort at step \(step)")

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
        #expect(refused.isEmpty, "coturn refused credentials Synapse had handed out: \(refused)")
        #expect(allocated >= 10, "too few allocations to mean anything: \(allocated)")
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
            """
            synapse: {config: [/nonexistent], group: nogroup}
            coturn: {realm: r, verify_uri: "turn:127.0.0.1:1"}
            rotation: {state_directory: \(state)}
            """
        )
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
