import Foundation
import Glibc
import TestSupport
import Testing
import TurnkeeperCredentials
import TurnkeeperSynapse

/// The daemon on a compressed schedule against a real coturn and a real Synapse that it restarts, with a
/// client fetching credentials from Synapse and allocating on coturn all the while.
@Suite("turnkeeper run, end to end", .mayBlock, .tags(.live))
struct DaemonEndToEndTests {
    @Test("Three scheduled rotations and retirements under load: zero refused; /metrics shows them")
    func scheduledRotationsUnderLoad() async throws {
        // Credentials live 4 s; a rotation is due 8 s after the last; retirement 4 s + 1 s after a switch.
        let deployment = try RotationTests.deploy(lifetime: "4s", interval: "8s") {
            $0.daemon = true
            $0.probeInterval = "2s"
            $0.retryMax = "4s"
        }
        defer { deployment.stop() }
        // Journal format: JOURNAL_STREAM names the very file that is the daemon's stdout.
        let journal = try DaemonProcess(config: deployment.config, in: deployment.directory, journal: true)
        defer { journal.stop() }
        // coturn learns the admin's original secret when the daemon adopts it, before it says it is ready.
        try await journal.waitForLog("ready:", timeout: .seconds(60))
        let port = try journal.port

        let managedFile = deployment.synapse.confD + "/90-turnkeeper.yaml"
        // In the order seen, so that a refusal says which secret signed it: 0 is the admin's original.
        var secretsSeen = [deployment.original.withExposedBytes { String(decoding: $0, as: UTF8.self) }]
        var held: TurnServerResponse?
        var allocated = 0
        var refused: [String] = []
        var expired: [String] = []
        var fetchFailures = 0
        let clock = ContinuousClock()
        let end = clock.now + .seconds(240)
        var rounds = 0
        // At most 1200 rounds or 240 s: until three rotations and three retirements have happened.
        while rounds < 1200 && clock.now < end {
            rounds += 1
            if journal.occurrences(of: "step 4:") >= 3 && journal.occurrences(of: "step 5:") >= 3 { break }
            guard journal.process.isRunning else { break }
            if let text = try? String(contentsOfFile: managedFile, encoding: .utf8),
                let value = text.split(separator: "\"").dropFirst().first, value.count >= 43
            {
                if !secretsSeen.contains(String(value)) { secretsSeen.append(String(value)) }
            }
            let answer: TurnServerResponse
            do {
                answer = try await deployment.synapseCredentials()
            } catch {
                fetchFailures += 1  // Synapse restarting: a client retries.
                try await Task.sleep(for: .milliseconds(100))
                continue
            }
            // The fresh credential, and the one held from the round before while it is still valid: a call
            // in progress keeps using what it was given.
            var credentials = [answer]
            if let held, let expiry = Int64(held.username.prefix { $0 != ":" }),
                expiry > Int64(Date().timeIntervalSince1970) + 1
            {
                credentials.append(held)
            }
            for credential in credentials {
                do {
                    if try await TURNAllocation.succeeds(
                        port: deployment.coturn.port, username: credential.username, password: credential.password)
                    {
                        allocated += 1
                    } else if let expiry = Int64(credential.username.prefix { $0 != ":" }),
                        expiry < Int64(Date().timeIntervalSince1970)
                    {
                        // coturn refuses an expired credential with the same 401 as a wrong secret: one that had
                        // expired by the time the refusal arrived (a stalled runner) says nothing about secrets.
                        expired.append("\(credential.username) at \(Date())")
                    } else {
                        let signer = secretsSeen.firstIndex {
                            (try? CredentialVerifier(secrets: [TurnSecret(adopting: $0, source: "test")]).verify(
                                username: credential.username, password: credential.password, nowSeconds: 0))
                                != .noSecretMatched
                        }
                        refused.append(
                            "\(credential.username) at \(Date()) \(credential == answer ? "fresh" : "held") signer \(String(describing: signer)) of \(secretsSeen.count)"
                        )
                    }
                } catch {
                    refused.append("\(credential.username): \(error)")
                }
            }
            held = answer
            try await Task.sleep(for: .milliseconds(100))
        }
        let log = journal.log
        #expect(journal.occurrences(of: "step 4:") >= 3, "\(log.suffix(4000))")
        #expect(journal.occurrences(of: "step 5:") >= 3, "\(log.suffix(4000))")
        #expect(
            refused.isEmpty,
            """
            coturn refused credentials Synapse had handed out, signed with a secret it should accept: \(refused) \
            (refused as expired, not counted: \(expired))
            \(log)
            coturn:
            \(deployment.coturn.log.suffix(4000))
            """
        )
        // However few rounds a loaded machine managed meanwhile: after three rotations, what Synapse hands out is
        // signed with the secret in its managed file (not the original) and coturn accepts it.
        let current = try #require(
            try String(contentsOfFile: managedFile, encoding: .utf8).split(separator: "\"").dropFirst().first)
        let secret = try TurnSecret(adopting: String(current), source: "test")
        #expect(secret != deployment.original)
        var afterRotations: TurnServerResponse?
        let fetchBy = clock.now + .seconds(60)
        while afterRotations == nil && clock.now < fetchBy {
            afterRotations = try? await deployment.synapseCredentials()
            if afterRotations == nil { try await Task.sleep(for: .milliseconds(200)) }
        }
        let fresh = try #require(afterRotations, "Synapse handed out no credentials after the rotations")
        let verdict = try CredentialVerifier(secrets: [secret]).verify(
            username: fresh.username, password: fresh.password, nowSeconds: Int64(Date().timeIntervalSince1970))
        #expect(verdict != .noSecretMatched, "Synapse signs with another secret than its managed file names")
        #expect(
            try await TURNAllocation.succeeds(
                port: deployment.coturn.port, username: fresh.username, password: fresh.password))
        #expect(allocated > 0, "the load allocated nothing")

        // Ready once a probe has passed after the last rotation.
        var ready = try HTTPGet.get(port: port, path: "/readyz")
        let readyBy = clock.now + .seconds(30)
        while ready.status != 200 && clock.now < readyBy {
            try await Task.sleep(for: .milliseconds(200))
            ready = try HTTPGet.get(port: port, path: "/readyz")
        }
        #expect(ready.status == 200, "\(ready.body)")
        #expect(try HTTPGet.get(port: port, path: "/healthz").status == 200)

        let text = try HTTPGet.get(port: port, path: "/metrics").body
        let metrics = try PrometheusText.parse(text)
        #expect((metrics.value("turnkeeper_rotations_total", ["result": "ok"]) ?? 0) >= 3)
        #expect(metrics.value("turnkeeper_rotations_total", ["result": "failed"]) == 0)
        let now = Date().timeIntervalSince1970
        let last = try #require(metrics.value("turnkeeper_last_rotation_timestamp_seconds"))
        #expect(last <= now && last > now - 120)
        #expect(try #require(metrics.value("turnkeeper_next_rotation_timestamp_seconds")) == last + 8)
        #expect(try #require(metrics.value("turnkeeper_secret_age_seconds")) >= 0)
        let accepted = try #require(metrics.value("turnkeeper_coturn_accepted_secrets"))
        #expect(accepted >= 1 && accepted <= 2)
        #expect(metrics.value("turnkeeper_store_up", ["store": "coturn"]) == 1)
        let uri = "turn:127.0.0.1:\(deployment.coturn.port)?transport=udp"
        for step in ["binding", "allocation", "permission", "relaySendData", "channel", "relayChannelData"] {
            #expect(metrics.value("turnkeeper_probe_success", ["uri": uri, "step": step]) == 1, "\(step)")
        }
        #expect((metrics.value("turnkeeper_probe_duration_seconds", ["uri": uri, "step": "binding"]) ?? 0) > 0)
        #expect(metrics.value("turnkeeper_probe_passed") == 1)

        // Journal lines: each one starts with a syslog priority.
        let lines = log.split(separator: "\n")
        #expect(!lines.isEmpty && lines.allSatisfy { $0.range(of: #"^<[0-7]>"#, options: .regularExpression) != nil })
        // No secret in the journal output, in /metrics, or in the daemon's argv and environment.
        let procfs = journal.procfsView
        #expect(procfs.contains("run") && procfs.contains(deployment.config))
        for secret in secretsSeen {
            #expect(!log.contains(secret) && !text.contains(secret) && !procfs.contains(secret))
        }
        journal.signal(SIGTERM)
        #expect(journal.process.wait(timeout: .seconds(120)) == 0)
    }
}
