import Foundation
import Glibc
import Synchronization
import TestSupport
import Testing
import TurnkeeperCredentials

/// A Synapse host and a separate TURN host, each with its own turnkeeper, state and clock, sharing only a
/// root key: no channel between them. Epochs are compressed to 20 s, credentials live 4 s: the real ratio
/// (1 d to 1 h) is wider. A Synapse restart can outlast such an epoch on a loaded machine, so each refusal is
/// judged by the epoch that really signed the credential (see `load`).
@Suite("Two hosts, derived secrets", .mayBlock, .tags(.live))
struct TwoHostTests {
    struct Host {
        let lab: NATLab
        let name: String
        let config: String
        var process: ChildProcess?
        var log = ""
        var earlierLogs: [String] = []

        mutating func start(offset: Int = 0) throws {
            if !log.isEmpty { earlierLogs.append(log) }
            log = "turnkeeper-\(name)-\(UUID().uuidString.prefix(6)).log"
            // The wall clock `offset` seconds ahead, through libfaketime.
            let environment = offset == 0 ? [] : try FakeTime.envArguments(offsetSeconds: Int64(offset))
            process = try lab.start(
                name, environment + [TurnkeeperBinary.path, "run", "--config", config], output: log)
        }

        /// This run's output.
        var output: String { (try? String(contentsOfFile: lab.directory.file(log), encoding: .utf8)) ?? "" }

        /// Every run's output, for a failure message.
        var history: String {
            (earlierLogs + [log]).map { (try? String(contentsOfFile: lab.directory.file($0), encoding: .utf8)) ?? "" }
                .joined(separator: "--- restarted\n")
        }

        func waitFor(_ text: String, count: Int = 1, timeout: Duration) async throws {
            let clock = ContinuousClock()
            let deadline = clock.now + timeout
            while output.components(separatedBy: text).count - 1 < count {
                guard clock.now < deadline, process?.isRunning == true else {
                    throw TestFailure("\(name): no \"\(text)\" ×\(count):\n\(output.suffix(3000))")
                }
                try await Task.sleep(for: .milliseconds(100))
            }
        }

        func stop() { process?.terminate(grace: .seconds(30)) }
    }

    /// Which epoch's secret signed a credential, and which epochs the TURN host keeps when it is refused.
    struct Epochs {
        let secrets: EpochSecrets
        /// The TURN host's rotation.keep_previous_epochs.
        let keep: Int64
        /// How far the TURN host's clock is ahead of the real one (its turnkeeper runs under libfaketime).
        var turnOffset: Int64 = 0

        init(rootKey: String, keep: Int64) throws {
            secrets = EpochSecrets(
                rootKey: try SecretFile.readRootKey(rootKey), realm: "lab.turnkeeper.test", length: 20)
            self.keep = keep
        }

        /// The epoch whose secret gives `password` for `username`, searched around `now`.
        func signer(username: String, password: String, now: Int64) throws -> Int64? {
            let current = secrets.epoch(at: now)
            for epoch in (current - 10)...(current + 2) {
                if try CredentialMinter(secret: secrets.secret(for: epoch)).password(for: username) == password {
                    return epoch
                }
            }
            return nil
        }

        /// The oldest epoch the TURN host keeps at `instant` (real clock), by its own clock.
        func oldestKept(at instant: Double) -> Int64 {
            secrets.epoch(at: Int64(instant) + turnOffset) - keep
        }

        /// When the TURN host stops keeping `epoch` (real clock): when epoch + keep + 1 begins by its clock.
        func retired(_ epoch: Int64) -> Double {
            Double((epoch + keep + 1) * 20 - turnOffset)
        }
    }

    /// What a Matrix client in alice's network sees, again and again: credentials from Synapse's
    /// /voip/turnServer, then an allocation on coturn with them. Runs for `duration`, or until `until` holds
    /// (checked between rounds; the duration and 3,000 rounds are then only bounds). Synapse restarting is not a refusal.
    ///
    /// A refusal counts (a product defect) unless one of two things explains it:
    /// - expired: the credential's expiry had passed by the earliest instant coturn can have refused it (the
    ///   probe's start plus its steps up to the failing one; coturn runs on the real clock): the probe was slower
    ///   than the 4 s credentials on a loaded machine;
    /// - lagging: Synapse signed it with an epoch the TURN host no longer keeps by then because a restart of
    ///   Synapse outlasted the epochs kept (21 to 54 s measured with two CPU hogs; real epochs are a day long).
    ///   From the Synapse host's log ("restarting Synapse" to "Synapse switched to", a second either side),
    ///   either:
    ///   - it was the epoch just before the oldest kept, handed out while the Synapse host was restarting Synapse
    ///     onto a later epoch; or
    ///   - the restart onto that very epoch ended only after the TURN host had retired it, and the Synapse host
    ///     began the next restart within 2 s (Synapse came back already behind, and its host was catching up).
    ///   A Synapse host that is late to begin, or never catches up, is not excused.
    /// Both are listed apart, with probes that failed for other reasons, so a run that mostly failed says so.
    static func load(
        _ lab: NATLab, token: String, epochs: Epochs, synapseLog: () -> String, duration: Duration,
        until: () -> Bool = { false }
    ) throws -> (accepted: Int, refused: [String], expired: [String]) {
        var accepted = 0
        var refused: [String] = []
        var expired: [String] = []
        var other = 0
        var firstOther = ""
        let clock = ContinuousClock()
        let end = clock.now + duration
        var rounds = 0
        let passwordFile = lab.directory.file("turn-password")
        while clock.now < end && rounds < 3000 && !until() {
            rounds += 1
            usleep(200_000)
            // The credentials a client gets; none while Synapse restarts.
            let fetchedAt = Date().timeIntervalSince1970
            let fetched = try lab.run(
                "alice",
                [
                    "/usr/bin/python3", "-c",
                    "import sys, urllib.request\n"
                        + "token = open(sys.argv[2]).read().strip()\n"
                        + "request = urllib.request.Request(sys.argv[1], headers={'Authorization': 'Bearer ' + token})\n"
                        + "print(urllib.request.urlopen(request, timeout=10).read().decode())",
                    "http://203.0.113.20:8008/_matrix/client/v3/voip/turnServer", token,
                ], timeout: .seconds(30))
            let answer = (try? JSONSerialization.jsonObject(with: Data(fetched.stdout.utf8))) as? [String: Any]
            guard fetched.status == 0, let username = answer?["username"] as? String,
                let password = answer?["password"] as? String
            else {
                if other == 0 { firstOther = "no credentials: \(fetched.description.prefix(400))" }
                other += 1
                continue
            }
            _ = try lab.directory.write("turn-password", password + "\n", mode: 0o600)
            let started = Date().timeIntervalSince1970
            let signer = try epochs.signer(username: username, password: password, now: Int64(started))
            let probe = try lab.run(
                "alice",
                [
                    TurnkeeperBinary.path, "probe", "turn:203.0.113.10?transport=udp", "--username", username,
                    "--password-file", passwordFile, "--packets", "1", "--json",
                ], timeout: .seconds(30))
            if probe.status == 0 {
                accepted += 1
            } else if probe.stdout.contains("credentials-rejected") || probe.stdout.contains("credentials-expired") {
                let report = (try? JSONSerialization.jsonObject(with: Data(probe.stdout.utf8))) as? [String: Any]
                let expiry = Double(RESTUsername.expiry(of: username))
                let steps = ((report?["targets"] as? [[String: Any]])?.first?["steps"] as? [[String: Any]]) ?? []
                var elapsed = 0.0
                for step in steps {
                    elapsed += (step["milliseconds"] as? Double ?? 0) / 1000
                    if step["status"] as? String == "fail" { break }
                }
                let refusedAt = started + elapsed
                let oldestKept = epochs.oldestKept(at: refusedAt)
                let entry =
                    "\(Date()): expiry \(Int64(expiry)), signed with epoch \(signer.map(String.init) ?? "none"), "
                    + "TURN host keeps epochs from \(oldestKept), probe began \(Int64(started)), refused no earlier than "
                    + "+\(elapsed) s: \(probe.stdout.prefix(600))"
                if expiry <= refusedAt {
                    expired.append("expired: " + entry)
                } else if let signer, signer == oldestKept - 1,
                    Self.restarts(synapseLog()).contains(where: { restart in
                        restart.epoch.map { $0 > signer } ?? true && fetchedAt >= restart.start - 1
                            && fetchedAt <= (restart.end ?? Date().timeIntervalSince1970) + 1
                    })
                {
                    expired.append("lagging: " + entry)
                } else if let signer, signer < oldestKept,
                    Self.cameBackBehind(Self.restarts(synapseLog()), epoch: signer, retired: epochs.retired(signer))
                {
                    expired.append("lagging (Synapse came back on an epoch already retired): " + entry)
                } else {
                    refused.append(entry)
                }
            } else {
                if other == 0 { firstOther = "probe: \(probe.description.prefix(400))" }
                other += 1
            }
        }
        // What was measured, for the run's log.
        let lagging = expired.filter { $0.hasPrefix("lagging") }.count
        print(
            "two hosts: \(accepted) accepted, \(refused.count) refused, \(lagging) lagging, "
                + "\(expired.count - lagging) expired, \(other) other"
                + (other > 0 ? " (the first: \(firstOther.prefix(300)))" : ""))
        if other > 0 {
            expired.append(
                "(and \(other) round(s) without credentials or with a probe failing otherwise; the first: \(firstOther))"
            )
        }
        return (accepted, refused, expired)
    }

    /// Whether the restart that put Synapse on `epoch` began on time (within 2 s of the epoch's start, or of the
    /// restart before it if that was still going), ended only after `retired` (a second's slack, the log's
    /// resolution), and was followed by the next restart within 2 s of its end.
    static func cameBackBehind(
        _ restarts: [(start: Double, end: Double?, epoch: Int64?)], epoch: Int64, retired: Double
    ) -> Bool {
        guard let index = restarts.firstIndex(where: { $0.epoch == epoch }), let end = restarts[index].end,
            end >= retired - 1, index + 1 < restarts.count
        else { return false }
        let previousEnd = index > 0 ? restarts[index - 1].end ?? 0 : 0
        let onTime = restarts[index].start <= max(Double(epoch * 20), previousEnd) + 2
        return onTime && restarts[index + 1].start <= end + 2
    }

    /// The Synapse host's restarts of Synapse, from its log: from "restarting Synapse" to the "epoch N:
    /// Synapse switched to" after it (no end yet while it restarts), in Unix seconds.
    static func restarts(_ log: String) -> [(start: Double, end: Double?, epoch: Int64?)] {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss"
        var restarts: [(start: Double, end: Double?, epoch: Int64?)] = []
        for line in log.split(separator: "\n") {
            let text = line.trimmingCharacters(in: .whitespaces)
            guard text.count > 19, let date = formatter.date(from: String(text.prefix(19))) else { continue }
            let at = date.timeIntervalSince1970
            // A restart the host did not see through (it was stopped, or began another) ends there.
            if let last = restarts.indices.last, restarts[last].end == nil,
                text.contains("restarting Synapse") || text.hasSuffix(" stopped")
            {
                restarts[last].end = at
            }
            if text.contains("restarting Synapse") {
                restarts.append((at, nil, nil))
            } else if let range = text.range(of: ": Synapse switched to"), let last = restarts.indices.last,
                restarts[last].end == nil
            {
                let before = text[..<range.lowerBound]
                restarts[last].end = at
                restarts[last].epoch = before.split(separator: " ").last.flatMap { Int64($0) }
            }
        }
        return restarts
    }

    /// Both hosts in a lab: coturn on the TURN host, a real Synapse on the Synapse host, each host's
    /// turnkeeper.yaml (epochs of 20 s, 4 s credentials), not yet started.
    struct Setup {
        let coturn: LabCoturn
        let synapse: SynapseServer
        let token: String
        let rootKey: String
        var turn: Host
        var synapseHost: Host

        /// The servers; each test stops the turnkeepers it started.
        func stop() {
            synapse.stop()
            coturn.stop()
        }
    }

    static func setUp(_ lab: NATLab, keepPreviousEpochs: Int? = nil) throws -> Setup {
        let coturn = try LabCoturn(lab: lab, host: "turn", listen: ["203.0.113.10"])
        let synapse = try SynapseServer(
            confFiles: [
                "10-turn.yaml": """
                turn_uris: ["turn:203.0.113.10?transport=udp"]
                turn_user_lifetime: 4s
                """
            ],
            supervised: true, namespace: lab.namespace("hs"), address: "203.0.113.20")
        let token = try lab.directory.write("alice.token", try synapse.register("alice"))
        let rootKey = try lab.directory.write(
            "root-key", try TurnSecret.generate().withExposedBytes { String(decoding: $0, as: UTF8.self) } + "\n")
        /// Both hosts' turnkeeper.yaml share the derivation and the daemon's settings.
        func yaml(role: String, synapse: TestConfiguration.Synapse?, database: String?, state: String) throws -> String
        {
            var coturn = TestConfiguration.Coturn(
                realm: "lab.turnkeeper.test", verifyURI: "turn:203.0.113.10?transport=udp")
            coturn.database = database
            var rotation = TestConfiguration.Rotation(stateDirectory: lab.directory.file(state))
            rotation.mode = "derived"
            rotation.rootKeyFile = rootKey
            rotation.epoch = "20s"
            if role == "turn" { rotation.keepPreviousEpochs = keepPreviousEpochs }
            var yaml = TestConfiguration(synapse: synapse, coturn: coturn, rotation: rotation)
            yaml.role = role
            var daemon = TestConfiguration.Daemon()
            daemon.probeInterval = "1h"
            daemon.retryInitial = "1s"
            daemon.retryMax = "2s"
            yaml.daemon = daemon
            return try yaml.render()
        }
        let turn = Host(
            lab: lab, name: "turn",
            config: try lab.directory.write(
                "turn.yaml", try yaml(role: "turn", synapse: nil, database: coturn.userDatabase, state: "turn-state")))
        var synapseSettings = TestConfiguration.Synapse(config: [synapse.homeserverYAML, synapse.confD])
        synapseSettings.managedFile = synapse.confD + "/90-turnkeeper.yaml"
        synapseSettings.restartCommand = synapse.restartCommand
        synapseSettings.healthURL = "http://203.0.113.20:8008/health"
        let synapseHost = Host(
            lab: lab, name: "hs",
            config: try lab.directory.write(
                "synapse.yaml",
                try yaml(role: "synapse", synapse: synapseSettings, database: nil, state: "synapse-state")))
        return Setup(
            coturn: coturn, synapse: synapse, token: token, rootKey: rootKey, turn: turn, synapseHost: synapseHost)
    }

    @Test("Three epochs, then clocks 3 s apart, then each host stopped through an epoch: no credential refused")
    func epochs() async throws {
        let lab = try NATLab()
        defer { #expect(lab.down().isEmpty) }
        let setup = try Self.setUp(lab)
        defer { setup.stop() }
        let (token, rootKey) = (setup.token, setup.rootKey)
        var (turn, synapseHost) = (setup.turn, setup.synapseHost)
        try turn.start()
        defer { turn.stop() }
        try await turn.waitFor("coturn accepts epochs", timeout: .seconds(60))
        try synapseHost.start()
        defer { synapseHost.stop() }
        try await synapseHost.waitFor("Synapse switched to", timeout: .seconds(60))

        // Three epochs in step: until Synapse was switched to a fourth epoch and the TURN host retired one, however
        // long a loaded machine takes (600 s only guards against a hang).
        let synapseOutput = { synapseHost.output }
        let turnOutput = { turn.output }
        var epochs = try Epochs(rootKey: rootKey, keep: 1)
        var (accepted, refused, expired) = try Self.load(
            lab, token: token, epochs: epochs, synapseLog: { synapseHost.history }, duration: .seconds(600),
            until: {
                synapseOutput().components(separatedBy: "Synapse switched to").count - 1 >= 4
                    && turnOutput().contains("retired epoch")
            })
        #expect(synapseHost.output.components(separatedBy: "Synapse switched to").count - 1 >= 4)
        #expect(turn.output.contains("retired epoch"))
        #expect(
            refused.isEmpty,
            "\(refused)\n(not counted: \(expired))\n--- turn\n\(turn.history)\n--- synapse host\n\(synapseHost.history)"
        )
        #expect(accepted > 0, "the load allocated nothing: \(expired)")

        // The TURN host's clock 3 s ahead of the Synapse host's, across two epoch starts.
        turn.stop()
        try turn.start(offset: 3)
        epochs.turnOffset = 3
        try await turn.waitFor("coturn accepts epochs", timeout: .seconds(60))
        let switched = synapseHost.output.components(separatedBy: "Synapse switched to").count - 1
        (accepted, refused, expired) = try Self.load(
            lab, token: token, epochs: epochs, synapseLog: { synapseHost.history }, duration: .seconds(600),
            until: { synapseOutput().components(separatedBy: "Synapse switched to").count - 1 >= switched + 2 })
        #expect(
            refused.isEmpty,
            "skew: \(refused)\n(not counted: \(expired))\n--- turn\n\(turn.history)\n--- synapse host\n\(synapseHost.history)"
        )
        #expect(accepted > 0, "the load allocated nothing: \(expired)")

        // The TURN host's turnkeeper down across an epoch boundary, then back; then the Synapse host's.
        // Each is stopped 5 s before an epoch starts and started 7 s after: down across exactly one boundary.
        for index in [0, 1] {
            let now = Date().timeIntervalSince1970
            var boundary = (now / 20).rounded(.up) * 20
            if boundary - now < 7 { boundary += 20 }
            try await Task.sleep(for: .milliseconds(Int((boundary - 5 - now) * 1000)))
            if index == 0 { turn.stop() } else { synapseHost.stop() }
            var (during, refusedDuring, expiredDuring) = try Self.load(
                lab, token: token, epochs: epochs, synapseLog: { synapseHost.history },
                duration: .milliseconds(Int((boundary + 7 - Date().timeIntervalSince1970) * 1000)))
            if index == 0 {
                try turn.start()
                epochs.turnOffset = 0
            } else {
                try synapseHost.start()
            }
            let (after, refusedAfter, expiredAfter) = try Self.load(
                lab, token: token, epochs: epochs, synapseLog: { synapseHost.history }, duration: .seconds(6))
            during += after
            refusedDuring += refusedAfter
            expiredDuring += expiredAfter
            #expect(
                refusedDuring.isEmpty,
                "host \(index) stopped: \(refusedDuring)\n(not counted: \(expiredDuring))\n--- turn\n\(turn.history)\n--- synapse host\n\(synapseHost.history)"
            )
            #expect(during > 0, "the load allocated nothing: \(expiredDuring)")
        }
        // check on each host sees them agree. With the Synapse host's clock two epochs ahead, and the TURN
        // host's turnkeeper stopped, check on the Synapse host names the lag.
        try await turn.waitFor("coturn accepts epochs", count: 2, timeout: .seconds(45))
        // The TURN host cannot see which epoch Synapse signs with, and does not claim to.
        for (host, config, says) in [
            ("hs", synapseHost.config, "the two hosts agree"),
            ("turn", turn.config, "seen only by `turnkeeper check` on the Synapse host"),
        ] {
            let check = try lab.run(host, [TurnkeeperBinary.path, "check", "--config", config])
            #expect(check.status == 0 && check.stdout.contains(says), "\(host): \(check)")
        }
        turn.stop()
        let skewed = try lab.run(
            "hs",
            try FakeTime.envArguments(offsetSeconds: 40) + [
                TurnkeeperBinary.path, "check", "--config", synapseHost.config,
            ])
        #expect(skewed.status == 1 && skewed.stdout.contains("the TURN host is behind this one"), "\(skewed)")

        // No secret in either host's journal-format output.
        let secret = try SecretFile.read(rootKey).secret.withExposedBytes { String(decoding: $0, as: UTF8.self) }
        #expect(!turn.output.contains(secret) && !synapseHost.output.contains(secret))
    }

    @Test(
        "Each host's turnkeeper away three epochs while a client keeps allocating: none refused (the TURN host keeps four)"
    )
    func awayThreeEpochs() async throws {
        let lab = try NATLab()
        defer { #expect(lab.down().isEmpty) }
        // Three previous epochs: the Synapse host may be away three epochs (documented window).
        let setup = try Self.setUp(lab, keepPreviousEpochs: 3)
        defer { setup.stop() }
        let epochs = try Epochs(rootKey: setup.rootKey, keep: 3)
        var (turn, synapseHost) = (setup.turn, setup.synapseHost)
        try turn.start()
        defer { turn.stop() }
        try await turn.waitFor("coturn accepts epochs", timeout: .seconds(60))
        try synapseHost.start()
        defer { synapseHost.stop() }
        try await synapseHost.waitFor("Synapse switched to", timeout: .seconds(60))
        for index in [0, 1] {
            // Stopped 3 s into an epoch, started three epochs (60 s) later: away across three epoch starts.
            let now = Date().timeIntervalSince1970
            let start = (now / 20).rounded(.up) * 20 + 3
            try await Task.sleep(for: .milliseconds(Int((start - now) * 1000)))
            // The host leaves in line with the epoch that has just begun (epochs of 20 s from the Unix epoch): a
            // loaded machine may have it still catching up, and one that left an epoch behind would be away four
            // epochs by the secret it signs with, not three. Waited for, not timed.
            let current = Int(start) / 20
            if index == 0 {
                try await turn.waitFor("epoch \(current): coturn accepts", timeout: .seconds(60))
                turn.stop()
            } else {
                try await synapseHost.waitFor("epoch \(current): Synapse switched", timeout: .seconds(60))
                synapseHost.stop()
            }
            var (during, refused, expired) = try Self.load(
                lab, token: setup.token, epochs: epochs, synapseLog: { synapseHost.history },
                duration: .milliseconds(Int((start + 60 - Date().timeIntervalSince1970) * 1000)))
            if index == 0 { try turn.start() } else { try synapseHost.start() }
            let (after, refusedAfter, expiredAfter) = try Self.load(
                lab, token: setup.token, epochs: epochs, synapseLog: { synapseHost.history }, duration: .seconds(10))
            during += after
            refused += refusedAfter
            expired += expiredAfter
            let away = index == 0 ? "the TURN host" : "the Synapse host"
            #expect(
                refused.isEmpty,
                "\(away) away: \(refused)\n(not counted: \(expired))\n--- turn\n\(turn.history)\n--- synapse host\n\(synapseHost.history)"
            )
            #expect(during > 0, "the load allocated nothing: \(expired)")
        }
        // The TURN host, back, kept the epoch Synapse still signed with, and said so.
        #expect(turn.history.contains("keeps epoch"), "\(turn.history.suffix(3000))")
    }
}

/// The rule that excuses a refusal as a Synapse restart outlasting the epochs kept, on the Synapse host's log of
/// a run with two CPU hogs (restarts of 24 to 39 s against 20 s epochs, one epoch kept).
@Suite("Two hosts: which refusals a slow Synapse restart explains")
struct TwoHostLagRuleTests {
    static let log = """
        2026-12-08 01:01:44 UTC info wrote conf.d/90-turnkeeper.yaml; restarting Synapse: restart.sh
        2026-12-08 01:02:08 UTC info epoch 89834585: Synapse switched to 9f6f10e1 (files written, restarted)
        2026-12-08 01:02:09 UTC info wrote conf.d/90-turnkeeper.yaml; restarting Synapse: restart.sh
        2026-12-08 01:02:48 UTC info epoch 89834586: Synapse switched to ca10b4a1 (files written, restarted)
        2026-12-08 01:02:49 UTC info wrote conf.d/90-turnkeeper.yaml; restarting Synapse: restart.sh
        2026-12-08 01:03:16 UTC info epoch 89834588: Synapse switched to 046c53a1 (files written, restarted)
        """

    @Test("Back on an epoch already retired, with the next restart begun at once: excused; otherwise not")
    func cameBackBehind() {
        let restarts = TwoHostTests.restarts(Self.log)
        #expect(restarts.map(\.epoch) == [89_834_585, 89_834_586, 89_834_588])
        // Epoch 89834586 (from 01:02:00) is retired at 01:02:40 with one epoch kept; Synapse came back on it at
        // 01:02:48 and its host began the next restart at 01:02:49.
        let retired = Double((89_834_586 + 2) * 20)
        #expect(TwoHostTests.cameBackBehind(restarts, epoch: 89_834_586, retired: retired))
        // Back on it before it was retired: Synapse then had time to hand it out legitimately; not excused.
        #expect(!TwoHostTests.cameBackBehind(restarts, epoch: 89_834_586, retired: retired + 60))
        // No next restart after it: the host did not catch up; not excused.
        let stuck = TwoHostTests.restarts(Self.log.split(separator: "\n").prefix(4).joined(separator: "\n"))
        #expect(!TwoHostTests.cameBackBehind(stuck, epoch: 89_834_586, retired: retired))
        // Began late: the restart onto 89834586 starting 30 s after both the epoch and the restart before it.
        let late = Self.log.replacingOccurrences(of: "01:02:09 UTC", with: "01:02:38 UTC")
        #expect(!TwoHostTests.cameBackBehind(TwoHostTests.restarts(late), epoch: 89_834_586, retired: retired))
    }
}
