import Foundation
import Glibc
import TestSupport
import Testing
import TurnkeeperCredentials
import TurnkeeperStores
import TurnkeeperSynapse

/// turnkeeper as root against careless and hostile files (issue 11): each test is a real mistake or attack on the
/// real binary, with a real coturn and a Synapse configuration directory. Synapse itself is not started: its
/// restart command is a recorder, which also shows what a child would see (argv and environment).
@Suite("Hardening: hostile and careless files", .mayBlock, .tags(.live))
struct HardeningTests {
    /// coturn, a Synapse config directory holding several secrets, turnkeeper.yaml, and a recording restart.
    struct Deployment {
        let base: TurnkeeperDeployment
        var coturn: CoturnServer { base.coturn }
        var directory: TemporaryDirectory { base.directory }
        /// Every secret of the deployment: none may appear in any output, log, child argv or environment.
        var secrets: [String]
        let turnSecret: String

        var confD: String { base.confD }
        var homeserver: String { base.homeserverYAML }
        var managedFile: String { base.managedFile }
        var restartLog: String { directory.file("restarts.log") }
        var config: String { base.config }
        var state: String { base.stateDirectory }

        init() throws {
            var options = TurnkeeperDeployment.Options()
            // homeserver.yaml below holds the secret, among others.
            options.secretPlace = nil
            options.interval = "1h"
            var base = try TurnkeeperDeployment(options)
            turnSecret = Self.text(base.original)
            secrets = [turnSecret]
            for _ in 0..<3 { secrets.append(try Self.text(TurnSecret.generate())) }
            let restartLog = base.directory.file("restarts.log")
            let recorder = try base.directory.write(
                "restart.sh",
                """
                #!/bin/bash
                { echo "restart: $*"; env; ls /proc/self/fd | tr '\\n' ' '; echo; } >> \(restartLog)
                [ -e \(base.directory.file("restart-fails")) ] && exit 1
                exit 0
                """, mode: 0o755)
            base.settings.synapse?.restartCommand = [recorder, "restart"]
            try base.writeConfig(mode: 0o644)
            self.base = base
            try writeHomeserver(turnSecret: turnSecret)
        }

        /// homeserver.yaml as Debian has it, with the secrets a Synapse host keeps in it.
        func writeHomeserver(turnSecret: String, extra: String = "") throws {
            try directory.write(
                "synapse/homeserver.yaml",
                """
                server_name: test.local
                macaroon_secret_key: "\(secrets[1])"
                registration_shared_secret: "\(secrets[2])"
                database:
                  name: psycopg2
                  args: {user: synapse, password: "\(secrets[3])", host: localhost}
                turn_uris: ["turn:127.0.0.1:\(coturn.port)?transport=udp"]
                turn_shared_secret: "\(turnSecret)"
                turn_user_lifetime: 1h
                \(extra)
                """)
        }

        static func text(_ secret: TurnSecret) -> String {
            secret.withExposedBytes { String(decoding: $0, as: UTF8.self) }
        }

        func run(_ arguments: [String]) throws -> ProcessOutput {
            try TurnkeeperBinary.run(arguments + ["--config", config])
        }

        var restarts: Int {
            ((try? String(contentsOfFile: restartLog, encoding: .utf8)) ?? "").components(separatedBy: "restart: ")
                .count - 1
        }

        /// Every secret turnkeeper knows of now, its own generated ones included.
        func allSecrets() async throws -> [String] {
            var all = secrets
            if let database = try? await CoturnSQLiteStore(path: coturn.userDatabase, realm: coturn.realm).secrets() {
                all += database.map(Self.text)
            }
            return all
        }

        /// Where a secret must never be: the given outputs, the restart recorder's log (argv, environment), and
        /// every file under the test directory that is not a secret store (state.json, the managed file and
        /// coturn's database hold secrets by design).
        func leaks(in outputs: [String]) async throws -> [String] {
            var places = outputs
            places.append((try? String(contentsOfFile: restartLog, encoding: .utf8)) ?? "")
            // Every other file under the deployment: only the stores hold secrets by design.
            let stores = [state, confD, homeserver, coturn.userDatabase, directory.file("synapse/turn-secret")]
            if let walker = FileManager.default.enumerator(atPath: directory.path) {
                for case let name as String in walker {
                    let path = directory.file(name)
                    guard !stores.contains(where: { path.hasPrefix($0) }) else { continue }
                    if let data = FileManager.default.contents(atPath: path) {
                        places.append(String(decoding: data, as: UTF8.self))
                    }
                }
            }
            let secrets = try await allSecrets()
            return secrets.flatMap { secret in places.filter { $0.contains(secret) }.map { String($0.prefix(200)) } }
        }

        func stop() { base.stop() }
    }

    /// Whether PyYAML as Synapse uses it (the venv's `yaml.safe_load`) loads the file, and the secret it reads.
    static func synapseLoads(_ path: String) throws -> (ok: Bool, turnSecret: String?) {
        let output = try ProcessRunner.run(
            try SynapseServer.python(),
            [
                "-c",
                "import sys, yaml\ntry:\n    c = yaml.safe_load(open(sys.argv[1]))\nexcept Exception:\n    sys.exit(3)\n"
                    + "print(c.get('turn_shared_secret'))",
                path,
            ])
        return (output.status == 0, output.status == 0 ? output.stdout.trimmingCharacters(in: .newlines) : nil)
    }

    @Test("A repeated key: Synapse's loader takes the last value, so does turnkeeper, and nothing is printed of it")
    func repeatedKeys() async throws {
        var deployment = try Deployment()
        defer { deployment.stop() }
        let last = Deployment.text(try TurnSecret.generate())
        deployment.secrets.append(last)
        try deployment.writeHomeserver(turnSecret: deployment.turnSecret, extra: "turn_shared_secret: \"\(last)\"\n")
        let synapse = try Self.synapseLoads(deployment.homeserver)
        #expect(synapse.ok && synapse.turnSecret == last)

        let check = try deployment.run(["check"])
        let rotate = try deployment.run(["rotate"])
        #expect(rotate.status == 0, "\(rotate)")
        // Adopted: the last value, which coturn now accepts; the first never reached coturn.
        let accepted = try await CoturnSQLiteStore(
            path: deployment.coturn.userDatabase, realm: deployment.coturn.realm
        ).secrets().map(Deployment.text)
        #expect(accepted.contains(last) && !accepted.contains(deployment.turnSecret))
        let probe = try TurnkeeperBinary.run(["probe", "--synapse-config", deployment.homeserver])
        #expect(
            try await deployment.leaks(in: [
                check.stdout, check.stderr, rotate.stdout, rotate.stderr, probe.stdout, probe.stderr,
            ]).isEmpty)
    }

    @Test(
        "Files Synapse would refuse are refused with file and line, by every command, and no secret is printed",
        arguments: [
            ("a control character on the secret's line", "turn_shared_secret: \"SECRET\u{1}\"\n", true),
            ("invalid UTF-8 on the secret's line", "turn_shared_secret: \"SECRET\u{FFFF}\"\n", true),
            ("an unterminated quote", "turn_shared_secret: \"SECRET\nturn_uris: [x]\n", true),
            ("a list used as a key", "[SECRET]: 1\n", true),
            ("a second document", "turn_user_lifetime: 1h\n---\nturn_shared_secret: SECRET\n", true),
            ("an alias bomb", Self.aliasBomb(depth: 9), false),
        ]
    )
    func brokenSynapseFiles(what: String, text: String, synapseRefuses: Bool) async throws {
        let deployment = try Deployment()
        defer { deployment.stop() }
        var bytes = Array(text.replacingOccurrences(of: "SECRET", with: deployment.turnSecret).utf8)
        if what.contains("UTF-8") {
            // U+FFFF stands for a byte that is not UTF-8 at all.
            bytes = Array(
                text.replacingOccurrences(of: "SECRET", with: deployment.turnSecret).replacingOccurrences(
                    of: "\u{FFFF}", with: "#"
                ).utf8)
            bytes[bytes.lastIndex(of: UInt8(ascii: "#"))!] = 0xFF
        }
        let broken = deployment.directory.file("synapse/conf.d/50-broken.yaml")
        _ = FileManager.default.createFile(atPath: broken, contents: Data(bytes))
        if synapseRefuses { #expect(try !Self.synapseLoads(broken).ok, "Synapse's own loader accepts it") }

        var outputs: [String] = []
        for command in [["check"], ["rotate"], ["rotate", "--resume"]] {
            let output = try deployment.run(command)
            #expect(output.status == 2, "\(command): \(output)")
            #expect(output.stderr.contains("50-broken.yaml") && output.stderr.contains("line"), "\(output.stderr)")
            outputs += [output.stdout, output.stderr]
        }
        let probe = try TurnkeeperBinary.run(["probe", "--synapse-config", deployment.homeserver, deployment.confD])
        #expect(probe.status == 2, "\(probe)")
        outputs += [probe.stdout, probe.stderr]
        #expect(try await deployment.leaks(in: outputs).isEmpty, "\(what)")
        #expect(deployment.restarts == 0)
        #expect(!FileManager.default.fileExists(atPath: deployment.managedFile))
    }

    static func aliasBomb(depth: Int) -> String {
        var text = "l0: &l0 [SECRET, x, x, x, x, x, x, x, x, x]\n"
        for level in 1...depth {
            text +=
                "l\(level): &l\(level) [" + Array(repeating: "*l\(level - 1)", count: 10).joined(separator: ", ")
                + "]\n"
        }
        return text
    }

    @Test("A later conf.d file that overrides or nulls the secret stops the rotation before step 1: no restart")
    func overrideStopsBeforeStepOne() async throws {
        let deployment = try Deployment()
        defer { deployment.stop() }
        for override in ["turn_shared_secret: \"\(deployment.secrets[1])\"\n", "turn_shared_secret: null\n"] {
            try deployment.directory.write("synapse/conf.d/99-override.yaml", override)
            let rotate = try deployment.run(["rotate"])
            #expect(rotate.status == 2, "\(rotate)")
            #expect(rotate.stderr.contains("99-override.yaml, line 1 sets turn_shared_secret"), "\(rotate.stderr)")
            #expect(!rotate.stdout.contains("step 1"))
            #expect(try await deployment.leaks(in: [rotate.stdout, rotate.stderr]).isEmpty)
        }
        // A managed file Synapse would never read.
        try FileManager.default.removeItem(atPath: deployment.directory.file("synapse/conf.d/99-override.yaml"))
        let text = try String(contentsOfFile: deployment.config, encoding: .utf8)
        try deployment.directory.write(
            "turnkeeper.yaml",
            text.replacingOccurrences(of: "90-turnkeeper.yaml", with: "90-turnkeeper.yml"), mode: 0o644)
        let unread = try deployment.run(["rotate"])
        #expect(unread.status == 2 && unread.stderr.contains("Synapse would never read"), "\(unread)")
        #expect(deployment.restarts == 0)
        #expect(try deployment.run(["status"]).stdout.contains("phase:          idle"))
    }

    @Test("Links and other users' files where turnkeeper writes are refused, and the target is never touched")
    func linksAndOwners() async throws {
        let deployment = try Deployment()
        defer { deployment.stop() }
        let decoy = try deployment.directory.write("decoy", "root's own file\n", mode: 0o600)
        // The managed file is a link to a root-only file.
        symlink(decoy, deployment.managedFile)
        var rotate = try deployment.run(["rotate"])
        #expect(rotate.status == 2 && rotate.stderr.contains("is a symbolic link"), "\(rotate)")
        #expect(try String(contentsOfFile: decoy, encoding: .utf8) == "root's own file\n")
        unlink(deployment.managedFile)

        // A managed file placed by another user, with turnkeeper's marker, would receive every secret.
        try deployment.directory.write("synapse/conf.d/90-turnkeeper.yaml", SynapseSecretStore.marker + "\n")
        chown(deployment.managedFile, 65534, 65534)
        rotate = try deployment.run(["rotate"])
        #expect(rotate.status == 2 && rotate.stderr.contains("owned by nobody (uid 65534)"), "\(rotate)")
        #expect(try String(contentsOfFile: deployment.managedFile, encoding: .utf8) == SynapseSecretStore.marker + "\n")
        unlink(deployment.managedFile)

        // The lock is a dangling link: opening it would create its target.
        try FileManager.default.createDirectory(atPath: deployment.state, withIntermediateDirectories: true)
        unlink(deployment.state + "/lock")
        symlink(deployment.directory.file("created-by-root"), deployment.state + "/lock")
        rotate = try deployment.run(["rotate"])
        #expect(rotate.status == 2 && rotate.stderr.contains("symbolic link"), "\(rotate)")
        #expect(access(deployment.directory.file("created-by-root"), F_OK) != 0)
        unlink(deployment.state + "/lock")

        // A killed run left a temporary copy of the managed file (it would hold the secret): the next run removes it.
        let stale = try deployment.directory.write("synapse/conf.d/.90-turnkeeper.yaml.turnkeeper-5eed.tmp", "x")
        rotate = try deployment.run(["rotate"])
        #expect(rotate.status == 0, "\(rotate)")
        #expect(access(stale, F_OK) != 0)
        #expect(deployment.restarts == 1)
        #expect(try await deployment.leaks(in: [rotate.stdout, rotate.stderr]).isEmpty)
    }

    @Test("An unprivileged user who may write conf.d races links in for 300 rounds: refused, the decoy intact")
    func symlinkRace() async throws {
        let deployment = try Deployment()
        defer { deployment.stop() }
        chmod(deployment.directory.path, 0o755)
        chmod(deployment.directory.file("synapse"), 0o755)
        chown(deployment.confD, 65534, 65534)
        let decoy = try deployment.directory.write("decoy", "root's own file\n", mode: 0o600)
        // The attacker flips the managed file's name between a link to the decoy and a file with the marker.
        let attack = try deployment.directory.write(
            "attack.sh",
            """
            #!/bin/bash
            cd \(deployment.confD) || exit 1
            for i in $(seq 1 300); do
              ln -sfn \(decoy) 90-turnkeeper.yaml
              printf '%s\\n' '\(SynapseSecretStore.marker)' > .m && mv -f .m 90-turnkeeper.yaml
            done
            touch attack-done
            """, mode: 0o755)
        let attacker = try ChildProcess(
            "/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "--", attack])
        var statuses: [Int32] = []
        var outputs: [String] = []
        for _ in 0..<5 {
            let rotate = try deployment.run(["rotate"])
            statuses.append(rotate.status)
            outputs += [rotate.stdout, rotate.stderr]
            #expect(
                rotate.stderr.contains("owned by nobody (uid 65534)") && rotate.stderr.contains("chown root"),
                "\(rotate)")
        }
        #expect(attacker.wait(timeout: .seconds(60)) == 0)
        #expect(access(deployment.confD + "/attack-done", F_OK) == 0)
        #expect(statuses.allSatisfy { $0 == 2 }, "\(statuses)")
        #expect(try String(contentsOfFile: decoy, encoding: .utf8) == "root's own file\n")
        #expect(ownership(of: decoy).uid == 0 && permissions(of: decoy) & 0o777 == 0o600)
        #expect(deployment.restarts == 0)
        #expect(try await deployment.leaks(in: outputs).isEmpty)
    }

    @Test("turnkeeper.yaml that another user may write is refused: it names the commands root runs")
    func configOwnership() async throws {
        let deployment = try Deployment()
        defer { deployment.stop() }
        chmod(deployment.config, 0o666)
        var output = try deployment.run(["status"])
        #expect(output.status == 2 && output.stderr.contains("chmod go-w"), "\(output)")
        chmod(deployment.config, 0o644)
        chown(deployment.config, 65534, 0)
        output = try deployment.run(["status"])
        #expect(output.status == 2 && output.stderr.contains("chown root"), "\(output)")
    }

    @Test("The daemon never restarts Synapse twice for the same failure; a changed configuration allows one more")
    func daemonRestartsOnce() async throws {
        let deployment = try Deployment()
        defer { deployment.stop() }
        _ = FileManager.default.createFile(atPath: deployment.directory.file("restart-fails"), contents: nil)
        try deployment.base.writeConfig(mode: 0o644) {
            $0.daemon = TestConfiguration.Daemon()
            $0.daemon?.listen = "127.0.0.1:0"
            $0.daemon?.retryInitial = "1s"
            $0.daemon?.retryMax = "1s"
        }
        let daemon = try DaemonProcess(config: deployment.config, in: deployment.directory)
        defer { daemon.stop() }
        try await daemon.waitForLog("not restarted again for the same failure", count: 3, timeout: .seconds(90))
        #expect(deployment.restarts == 1, "\(daemon.log.suffix(3000))")
        // The admin changes Synapse's configuration: one more restart, and no more.
        try deployment.directory.write("synapse/conf.d/20-admin.yaml", "turn_allow_guests: false\n")
        try await Self.waitUntil("a second restart", timeout: .seconds(90), log: daemon) { deployment.restarts >= 2 }
        let seen = daemon.occurrences(of: "not restarted again for the same failure")
        try await daemon.waitForLog("not restarted again for the same failure", count: seen + 3, timeout: .seconds(90))
        #expect(deployment.restarts == 2, "\(daemon.log.suffix(3000))")
        // Fixed: the next retry restarts and finishes.
        try FileManager.default.removeItem(atPath: deployment.directory.file("restart-fails"))
        try deployment.directory.write("synapse/conf.d/20-admin.yaml", "turn_allow_guests: true\n")
        try await daemon.waitForLog("step 4:", timeout: .seconds(90))
        #expect(deployment.restarts == 3)
        daemon.signal(SIGTERM)
        #expect(daemon.process.wait(timeout: .seconds(60)) == 0)
        #expect(try await deployment.leaks(in: [daemon.log, daemon.procfsView]).isEmpty)
    }

    @Test("Alias bombs of growing depth in turnkeeper.yaml: reload refused, /healthz answers, SIGTERM stops it")
    func aliasBombReload() async throws {
        let deployment = try Deployment()
        defer { deployment.stop() }
        try deployment.base.writeConfig(mode: 0o644) {
            $0.daemon = TestConfiguration.Daemon()
            $0.daemon?.listen = "127.0.0.1:0"
        }
        let good = try String(contentsOfFile: deployment.config, encoding: .utf8)
        let daemon = try DaemonProcess(config: deployment.config, in: deployment.directory)
        defer { daemon.stop() }
        try await daemon.waitForLog("serving /healthz", timeout: .seconds(60))
        for (index, depth) in [6, 12, 24, 48].enumerated() {
            // Aliases as keys and as values, the shapes that made parsing exponential.
            var bomb = good + "x0: &x0 {a: 1, b: 2}\n"
            for level in 1...depth { bomb += "x\(level): &x\(level) {k: *x\(level - 1), j: *x\(level - 1)}\n" }
            try deployment.directory.write("turnkeeper.yaml", bomb, mode: 0o644)
            daemon.signal(SIGHUP)
            try await daemon.waitForLog(
                "SIGHUP: kept the running configuration", count: index + 1, timeout: .seconds(30))
            #expect(try daemon.get("/healthz", timeoutSeconds: 10).status == 200)
        }
        daemon.signal(SIGTERM)
        #expect(daemon.process.wait(timeout: .seconds(30)) == 0, "\(daemon.log.suffix(2000))")
    }

    @Test("Root keys under 256 bits, or readable by others, are refused by status, check and rotate")
    func weakRootKeys() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var yaml = TestConfiguration(
            synapse: nil, coturn: .init(realm: "r", verifyURI: "turn:127.0.0.1:9"),
            rotation: .init(stateDirectory: directory.file("state")))
        yaml.role = "turn"
        yaml.coturn.database = directory.file("turndb")
        yaml.rotation.rootKeyFile = directory.file("root-key")
        yaml.rotation.epoch = "1d"
        let config = try directory.write("turnkeeper.yaml", try yaml.render(), mode: 0o644)
        for length in [1, 3, 16, 42] {
            let key = String(Deployment.text(try TurnSecret.generate()).prefix(length))
            try directory.write("root-key", key + "\n", mode: 0o600)
            for command in ["status", "check", "rotate"] {
                let output = try TurnkeeperBinary.run([command, "--config", config])
                #expect(output.status == 2, "\(length) characters, \(command): \(output)")
                #expect(output.stderr.contains("under 256 bits") && output.stderr.contains("secret generate"))
                // A key of a few characters appears in any text by chance; longer ones must not appear.
                if length >= 16 { #expect(!output.stdout.contains(key) && !output.stderr.contains(key)) }
            }
        }
        let strong = Deployment.text(try TurnSecret.generate())
        for mode: mode_t in [0o640, 0o604] {
            try directory.write("root-key", strong + "\n", mode: mode)
            let output = try TurnkeeperBinary.run(["status", "--config", config])
            #expect(output.status == 2 && output.stderr.contains("chmod 600"), "\(output)")
        }
        try directory.write("root-key", strong + "\n", mode: 0o600)
        #expect(try TurnkeeperBinary.run(["status", "--config", config]).status == 0)
    }

    @Test("In path mode, a secret file that is a link is refused and its target never written")
    func secretFileLink() async throws {
        let deployment = try Deployment()
        defer { deployment.stop() }
        let decoy = try deployment.directory.write("decoy", "root's own file\n", mode: 0o600)
        let secretFile = deployment.directory.file("synapse/turn-secret")
        symlink(decoy, secretFile)
        try deployment.base.writeConfig(mode: 0o644) {
            $0.synapse?.mode = "path"
            $0.synapse?.secretFile = secretFile
        }
        let rotate = try deployment.run(["rotate"])
        #expect(rotate.status == 2 && rotate.stderr.contains("is a symbolic link"), "\(rotate)")
        #expect(try String(contentsOfFile: decoy, encoding: .utf8) == "root's own file\n")
        #expect(deployment.restarts == 0)
    }

    /// Polls `condition` until it holds; fails with the daemon's log when the time runs out or the daemon exits.
    static func waitUntil(
        _ what: String, timeout: Duration, log daemon: DaemonProcess, _ condition: () -> Bool
    ) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while !condition() {
            guard daemon.process.isRunning, clock.now < deadline else {
                throw TestFailure("no \(what) within \(timeout):\n\(daemon.log.suffix(3000))")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}
