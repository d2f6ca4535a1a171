import Foundation
import TestSupport
import Testing
import TurnkeeperCredentials
import TurnkeeperStores

/// Retiring a secret is proven with a real allocation at coturn.verify_uri: a secret coturn still accepts (a
/// leftover static-auth-secret line, a restart that did not take effect) is a failed retirement, never "retired".
/// Synapse is only a config directory here: its restart command is /bin/true.
@Suite("Retirement and coturn restarts, proven by real allocations")
struct RetirementTests {
    static func text(_ secret: TurnSecret) -> String { secret.withExposedBytes { String(decoding: $0, as: UTF8.self) } }

    /// True when coturn on `port` grants an allocation signed with `secret`, false when it refuses it (401).
    static func accepts(_ secret: TurnSecret, port: UInt16) async throws -> Bool {
        let credential = try CredentialMinter(secret: secret)
            .credential(user: "@retirement:test", expiry: Int64(Date().timeIntervalSince1970) + 600)
        return try await TURNAllocation.succeeds(
            port: port, username: credential.username, password: credential.password)
    }

    /// A Synapse config directory whose secret is `secret`, with credentials living 1 s.
    static func synapse(in directory: TemporaryDirectory, port: UInt16, secret: TurnSecret) throws -> String {
        try FileManager.default.createDirectory(
            atPath: directory.file("synapse/conf.d"), withIntermediateDirectories: true)
        try directory.write(
            "synapse/homeserver.yaml",
            "turn_uris: [\"turn:127.0.0.1:\(port)\"]\nturn_shared_secret: \"\(text(secret))\"\nturn_user_lifetime: 1s\n"
        )
        return """
            synapse:
              config: [\(directory.file("synapse/homeserver.yaml")), \(directory.file("synapse/conf.d"))]
              managed_file: \(directory.file("synapse/conf.d/90-turnkeeper.yaml"))
              group: "0"
              restart_command: [/bin/true]
            """
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

    @Test(
        "SQLite store and a leftover static line naming the old secret: exit 1 naming file and line, the secret stays listed and accepted; without the line it is retired and refused"
    )
    func leftoverStaticLine() async throws {
        let original = try TurnSecret.generate()
        let coturn = try CoturnServer(secrets: [Self.text(original)])
        defer { coturn.stop() }
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let config = try directory.write(
            "turnkeeper.yaml",
            try Self.synapse(in: directory, port: coturn.port, secret: original) + """

                coturn:
                  realm: \(coturn.realm)
                  verify_uri: turn:127.0.0.1:\(coturn.port)?transport=udp
                  store: sqlite
                  database: \(coturn.userDatabase)
                  config_file: \(coturn.configPath)
                rotation: {margin: 1s, state_directory: \(directory.file("state"))}
                """)
        let line = try Self.lineNumber(of: "static-auth-secret=\(Self.text(original))", in: coturn.configPath)
        let place = "\(coturn.configPath), line \(line)"

        // check names the line beside the database, by fingerprint only.
        let check = try Self.run(["check"], config: config)
        #expect(check.status == 1, "\(check)")
        #expect(check.stdout.contains("\(place): static-auth-secret (\(original.fingerprint)) beside"), "\(check)")

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
        let original = try TurnSecret.generate()
        var options = CoturnServer.Options()
        options.supervised = true
        let coturn = try CoturnServer(secrets: [Self.text(original)], options: options)
        defer { coturn.stop() }
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let synapse = try Self.synapse(in: directory, port: coturn.port, secret: original)
        func config(restart: [String], timeout: String) throws -> String {
            try directory.write(
                "turnkeeper.yaml",
                synapse + """

                    coturn:
                      realm: \(coturn.realm)
                      verify_uri: turn:127.0.0.1:\(coturn.port)?transport=udp
                      store: config
                      config_file: \(coturn.configPath)
                      restart_command: [\(restart.joined(separator: ", "))]
                      restart_timeout: \(timeout)
                    rotation: {margin: 1s, state_directory: \(directory.file("state"))}
                    """)
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
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let keyText = try TurnSecret.generate().withExposedBytes { String(decoding: $0, as: UTF8.self) }
        let keyFile = try directory.write("root-key", keyText + "\n")
        let realm = "turnkeeper.test"
        let epochs = EpochSecrets(rootKey: try SecretFile.read(keyFile).secret, realm: realm, length: 3600)
        // turnkeeper's clock is put in the middle of an epoch, so that no boundary passes during the test.
        let now = Int64(Date().timeIntervalSince1970)
        let e = epochs.epoch(at: now)
        let offset = e * 3600 + 1800 - now
        let leftover = try epochs.secret(for: e - 1)
        let coturn = try CoturnServer(secrets: [Self.text(leftover)], realm: realm)
        defer { coturn.stop() }
        let config = try directory.write(
            "turnkeeper.yaml",
            """
            role: turn
            coturn:
              realm: \(realm)
              verify_uri: turn:127.0.0.1:\(coturn.port)?transport=udp
              database: \(coturn.userDatabase)
              config_file: \(coturn.configPath)
            rotation:
              mode: derived
              root_key_file: \(keyFile)
              epoch: 1h
              state_directory: \(directory.file("state"))
            """)
        let place =
            "\(coturn.configPath), line \(try Self.lineNumber(of: "static-auth-secret=\(Self.text(leftover))", in: coturn.configPath))"
        let clock = ["TURNKEEPER_TEST_CLOCK_OFFSET_SECONDS": String(offset)]
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

        // Three epochs later: e-1, e and e+1 go; e-1 is still accepted through the static line.
        let later = ["TURNKEEPER_TEST_CLOCK_OFFSET_SECONDS": String(offset + 3 * 3600)]
        let jumped = try Self.run(["rotate"], config: config, environment: later)
        #expect(jumped.status == 1, "\(jumped)")
        #expect(jumped.stdout.contains("could not retire epoch \(e - 1)'s secret"), "\(jumped)")
        #expect(jumped.stdout.contains(place), "\(jumped)")
        #expect(!jumped.stdout.contains("retired epoch \(e - 1)'s secret"))
        for epoch in [e, e + 1] {
            #expect(jumped.stdout.contains("retired epoch \(epoch)'s secret"), "\(jumped)")
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
