import Foundation
import TestSupport
import Testing
import TurnkeeperCredentials
import TurnkeeperStores

/// Retiring a secret is proven with a real allocation at coturn.verify_uri: a secret coturn still accepts (a
/// leftover static-auth-secret line, a restart that did not take effect) is a failed retirement, never "retired".
/// Synapse is only a config directory here: its restart command is /bin/true.
@Suite("Retirement and coturn restarts, proven by real allocations", .mayBlock, .tags(.live))
struct RetirementTests {
    static func text(_ secret: TurnSecret) -> String { secret.withExposedBytes { String(decoding: $0, as: UTF8.self) } }

    /// True when coturn on `port` grants an allocation signed with `secret`, false when it refuses it (401).
    static func accepts(_ secret: TurnSecret, port: UInt16) async throws -> Bool {
        let credential = try CredentialMinter(secret: secret)
            .credential(user: "@retirement:test", expiry: Int64(Date().timeIntervalSince1970) + 600)
        return try await TURNAllocation.succeeds(
            port: port, username: credential.username, password: credential.password)
    }

    /// coturn holding the original secret in turnserver.conf, and Synapse's configuration directory whose secret
    /// (in homeserver.yaml) it is, with credentials living 1 s. Its restart command is /bin/true.
    static func deployment(store: TurnkeeperDeployment.Options.Store = .sqlite) throws -> TurnkeeperDeployment {
        var options = TurnkeeperDeployment.Options()
        options.store = store
        options.originalInCoturnConfig = true
        options.secretPlace = .homeserver
        options.turnUserLifetime = "1s"
        options.group = "0"
        return try TurnkeeperDeployment(options)
    }

    static func run(_ arguments: [String], config: String, environment: [String: String] = [:]) throws
        -> ProcessOutput
    {
        try TurnkeeperBinary.run(arguments + ["--config", config], timeout: .seconds(180), environment: environment)
    }

    static func status(_ config: String, environment: [String: String] = [:]) throws -> [String: Any] {
        let output = try run(["status", "--json"], config: config, environment: environment)
        return try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any] ?? [:]
    }

    /// Waits (bounded) until the wall clock is past the first retiring secret's time.
    static func waitForRetirement(_ config: String) async throws {
        let retiring = try #require((try status(config)["retiring"] as? [[String: Any]])?.first)
        let at = try #require(retiring["retiresAt"] as? Int)
        let deadline = Date().addingTimeInterval(30)
        while Int(Date().timeIntervalSince1970) <= at && Date() < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// The 1-based line of `config` that is exactly `line`.
    static func lineNumber(of line: String, in path: String) throws -> Int {
        let lines = try String(contentsOfFile: path, encoding: .utf8).components(separatedBy: "\n")
        return try #require(lines.firstIndex(of: line)) + 1
    }

    @Test("Under faketime, turnkeeper's wall clock is shifted: a credential minted 3 h ahead expires 4 h from now")
    func fakeTime() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let secretFile = try directory.write("secret", Self.text(try TurnSecret.generate()) + "\n")
        let minted = try TurnkeeperBinary.run(
            ["credentials", "--user", "@a:b", "--secret-file", secretFile, "--ttl", "1h", "--json"],
            environment: try FakeTime.environment(offsetSeconds: 3 * 3600))
        #expect(minted.status == 0, "\(minted)")
        let json = try JSONSerialization.jsonObject(with: Data(minted.stdout.utf8)) as? [String: Any]
        let username = try #require(json?["username"] as? String)
        let expiry = try #require(Int64(username.split(separator: ":")[0]))
        let now = Int64(Date().timeIntervalSince1970)
        // Ahead by 3 h + the 1 h lifetime; the minutes either side only absorb the time the command took.
        #expect(abs(expiry - now - 4 * 3600) < 600, "expiry \(expiry), now \(now)")
    }

    @Test(
        "SQLite store and a leftover static line naming the old secret: exit 1 naming file and line, the secret stays listed and accepted; without the line it is retired and refused"
    )
    func leftoverStaticLine() async throws {
        let deployment = try Self.deployment()
        defer { deployment.stop() }
        let original = deployment.original
        let coturn = deployment.coturn
        let config = try deployment.writeConfig { $0.coturn.configFile = coturn.configPath }
        let line = try Self.lineNumber(of: "static-auth-secret=\(Self.text(original))", in: coturn.configPath)
        let place = "\(coturn.configPath), line \(line)"

        // check names the line beside the database, by fingerprint only.
        let check = try Self.run(["check"], config: config)
        #expect(check.status == 1, "\(check)")
        #expect(check.stdout.contains("\(place): static-auth-secret (\(original.fingerprint)) beside"), "\(check)")
        // status lists it by where it comes from, and Synapse as the consumer that signs with it.
        let listed = try Self.run(["status"], config: config)
        #expect(
            listed.stdout.contains("\(original.fingerprint)  \(place) (static-auth-secret); NOT turnkeeper's"),
            "\(listed)")
        #expect(listed.stdout.contains("used by Synapse"), "\(listed)")

        let first = try Self.run(["rotate"], config: config)
        #expect(first.status == 0, "\(first)")
        try await Self.waitForRetirement(config)
        let failed = try Self.run(["rotate", "--resume"], config: config)
        #expect(failed.status == 1, "\(failed)")
        #expect(failed.stdout.contains("could not retire \(original.fingerprint)"), "\(failed)")
        #expect((failed.stdout + failed.stderr).contains(place), "\(failed)")
        #expect(!failed.stdout.contains("retired \(original.fingerprint)"))
        #expect(try await Self.accepts(original, port: coturn.port), "the real allocation must still be accepted")
        var state = try Self.status(config)
        #expect((state["retiring"] as? [[String: Any]])?.first?["fingerprint"] as? String == original.fingerprint)
        #expect((state["lastResult"] as? String)?.hasPrefix("failed") == true, "\(state)")

        // No new rotation starts on top of a failed retirement.
        let current = state["current"] as? String
        let blocked = try Self.run(["rotate"], config: config)
        #expect(blocked.status == 1, "\(blocked)")
        #expect(try Self.status(config)["current"] as? String == current)

        // The admin removes the line and restarts coturn: the next run retires it, and coturn refuses it.
        let kept = try String(contentsOfFile: coturn.configPath, encoding: .utf8).components(separatedBy: "\n")
            .filter { $0 != "static-auth-secret=\(Self.text(original))" }
        try kept.joined(separator: "\n").write(toFile: coturn.configPath, atomically: false, encoding: .utf8)
        try coturn.restart()
        let retired = try Self.run(["rotate", "--resume"], config: config)
        #expect(retired.status == 0, "\(retired)")
        #expect(retired.stdout.contains("retired \(original.fingerprint): coturn refuses it"), "\(retired)")
        #expect(try await !Self.accepts(original, port: coturn.port))
        state = try Self.status(config)
        #expect((state["retiring"] as? [[String: Any]])?.isEmpty == true, "\(state)")

        let secret = Self.text(original)
        for output in [check, first, failed, blocked, retired] {
            #expect(!output.stdout.contains(secret) && !output.stderr.contains(secret))
        }
    }

    @Test(
        "Config store: a restart that fails, restarts nothing or hangs is not done; it is redone on resume until coturn runs the new file"
    )
    func configStoreRestarts() async throws {
        let deployment = try Self.deployment(store: .config)
        defer { deployment.stop() }
        let original = deployment.original
        let coturn = deployment.coturn
        func config(restart: [String], timeout: String) throws -> String {
            try deployment.writeConfig {
                $0.coturn.restartCommand = restart
                $0.coturn.restartTimeout = timeout
            }
        }
        let real = coturn.restartCommand
        var outputs: [ProcessOutput] = []

        // Step 2 with a restart command that fails, one that exits 0 but restarts nothing, one that hangs:
        // each stops the rotation in phase adding with the restart owed, never as "credentials rejected".
        for (arguments, restart, timeout, expected) in [
            (["rotate"], ["/bin/false"], "3s", "failed with exit status 1"),
            (["rotate", "--resume"], ["/bin/true"], "3s", "still runs with the previous file"),
            (["rotate", "--resume"], ["/bin/sleep", "60"], "2s", "did not finish in 2 s"),
        ] {
            let output = try Self.run(arguments, config: try config(restart: restart, timeout: timeout))
            outputs.append(output)
            #expect(output.status == 1, "\(restart): \(output)")
            #expect(output.stderr.contains(expected), "\(restart): \(output)")
            #expect(!output.stderr.contains("credentials rejected") && !output.stderr.contains("did not grant"))
            #expect(try Self.status(try config(restart: restart, timeout: timeout))["phase"] as? String == "adding")
        }
        let owed = try Self.run(["check"], config: try config(restart: real, timeout: "30s"))
        #expect(owed.stdout.contains("a coturn restart is owed"), "\(owed)")

        // The real restart: resume restarts coturn, proves the file in force, and finishes the rotation.
        let resumed = try Self.run(["rotate", "--resume"], config: try config(restart: real, timeout: "30s"))
        outputs.append(resumed)
        #expect(resumed.status == 0, "\(resumed)")
        #expect(try Self.status(try config(restart: real, timeout: "30s"))["phase"] as? String == "idle")
        let secrets = try CoturnConfigStore(path: coturn.configPath).secrets()
        let new = try #require(secrets.first { $0 != original })
        #expect(try await Self.accepts(new, port: coturn.port))
        #expect(try await Self.accepts(original, port: coturn.port))
        #expect(
            try !Self.run(["check"], config: try config(restart: real, timeout: "30s")).stdout.contains(
                "restart is owed"))

        // Retirement with a restart that restarts nothing: coturn still accepts the old secret, so it is not retired.
        try await Self.waitForRetirement(try config(restart: real, timeout: "30s"))
        let silent = try Self.run(["rotate", "--resume"], config: try config(restart: ["/bin/true"], timeout: "3s"))
        outputs.append(silent)
        #expect(silent.status == 1, "\(silent)")
        #expect(silent.stdout.contains("could not retire \(original.fingerprint)"), "\(silent)")
        #expect(silent.stdout.contains("still accepts \(original.fingerprint)"), "\(silent)")
        #expect(!silent.stdout.contains("retired \(original.fingerprint)"))
        #expect(try await Self.accepts(original, port: coturn.port))
        #expect(try !CoturnConfigStore(path: coturn.configPath).secrets().contains(original))

        // The real restart on resume: now coturn refuses it, and only then is it retired.
        let retired = try Self.run(["rotate", "--resume"], config: try config(restart: real, timeout: "30s"))
        outputs.append(retired)
        #expect(retired.status == 0, "\(retired)")
        #expect(retired.stdout.contains("retired \(original.fingerprint): coturn refuses it"), "\(retired)")
        #expect(try await !Self.accepts(original, port: coturn.port))
        #expect(try await Self.accepts(new, port: coturn.port))

        for output in outputs {
            for secret in [original, new].map(Self.text) {
                #expect(!output.stdout.contains(secret) && !output.stderr.contains(secret))
            }
        }
    }

    @Test(
        "TURN host: status shows each epoch's own fingerprint; an old epoch a static line keeps accepted is not retired"
    )
    func turnHost() async throws {
        let rootKey = try TurnSecret.generate()
        let keyText = rootKey.withExposedBytes { String(decoding: $0, as: UTF8.self) }
        let realm = "turnkeeper.test"
        let epochs = EpochSecrets(rootKey: rootKey, realm: realm, length: 3600)
        // turnkeeper's clock is put in the middle of an epoch, so that no boundary passes during the test.
        let now = Int64(Date().timeIntervalSince1970)
        let e = epochs.epoch(at: now)
        let offset = e * 3600 + 1800 - now
        let leftover = try epochs.secret(for: e - 1)
        var options = TurnkeeperDeployment.Options()
        options.role = .turn(epoch: "1h")
        options.rootKey = rootKey
        options.realm = realm
        options.coturnSecrets = [Self.text(leftover)]
        let deployment = try TurnkeeperDeployment(options)
        defer { deployment.stop() }
        let coturn = deployment.coturn
        let config = try deployment.writeConfig { $0.coturn.configFile = coturn.configPath }
        let place =
            "\(coturn.configPath), line \(try Self.lineNumber(of: "static-auth-secret=\(Self.text(leftover))", in: coturn.configPath))"
        let clock = try FakeTime.environment(offsetSeconds: offset)
        let first = try Self.run(["rotate"], config: config, environment: clock)
        #expect(first.status == 0, "\(first)")
        let status = try Self.run(["status"], config: config, environment: clock)
        for epoch in (e - 1)...(e + 1) {
            #expect(
                status.stdout.contains("epoch \(epoch) (\(try epochs.secret(for: epoch).fingerprint))"), "\(status)")
        }
        #expect(!status.stdout.contains(epochs.keyFingerprint), "\(status)")

        let check = try Self.run(["check"], config: config, environment: clock)
        #expect(check.stdout.contains("\(place): static-auth-secret (\(leftover.fingerprint))"), "\(check)")

        // Three epochs later, acting at each epoch start as the daemon does: e-1, e and e+1 go; e-1 is still
        // accepted through the static line.
        var outputs = ""
        for step in Int64(1)...2 {
            outputs += try Self.run(
                ["rotate"], config: config, environment: try FakeTime.environment(offsetSeconds: offset + step * 3600)
            ).stdout
        }
        let jumped = try Self.run(
            ["rotate"], config: config, environment: try FakeTime.environment(offsetSeconds: offset + 3 * 3600))
        outputs += jumped.stdout
        let later = try FakeTime.environment(offsetSeconds: offset + 3 * 3600)
        #expect(jumped.status == 1, "\(jumped)")
        #expect(jumped.stdout.contains("could not retire epoch \(e - 1)'s secret"), "\(jumped)")
        #expect(jumped.stdout.contains(place), "\(jumped)")
        #expect(!outputs.contains("retired epoch \(e - 1)'s secret"))
        for epoch in [e, e + 1] {
            #expect(outputs.contains("retired epoch \(epoch)'s secret"), "\(outputs)")
            #expect(try await !Self.accepts(try epochs.secret(for: epoch), port: coturn.port))
        }
        #expect(try await Self.accepts(leftover, port: coturn.port))
        let listed = try Self.run(["status"], config: config, environment: later)
        #expect(listed.stdout.contains("epoch \(e - 1) (\(leftover.fingerprint), not retired yet)"), "\(listed)")

        // Without the line, the next run retires it, and coturn refuses it.
        let kept = try String(contentsOfFile: coturn.configPath, encoding: .utf8).components(separatedBy: "\n")
            .filter { $0 != "static-auth-secret=\(Self.text(leftover))" }
        try kept.joined(separator: "\n").write(toFile: coturn.configPath, atomically: false, encoding: .utf8)
        try coturn.restart()
        let retired = try Self.run(["rotate"], config: config, environment: later)
        #expect(retired.status == 0, "\(retired)")
        #expect(retired.stdout.contains("retired epoch \(e - 1)'s secret (\(leftover.fingerprint))"), "\(retired)")
        #expect(try await !Self.accepts(leftover, port: coturn.port))
        for output in [first, status, check, jumped, listed, retired] {
            #expect(!output.stdout.contains(keyText) && !output.stderr.contains(keyText))
        }
    }
}
