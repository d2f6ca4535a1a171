import Foundation
import Glibc
import TestSupport
import Testing
import TurnkeeperConfiguration
import TurnkeeperCredentials
import TurnkeeperSynapse

/// One coturn, three apps: a real Synapse, a real Prosody (asked by a real XMPP client) and a stand-in app that
/// reads its config file at start, all rotated by the real binary. Every consumer's command runs through a
/// recorder, so the test sees each argv and environment turnkeeper gave.
@Suite("One coturn, many apps: every consumer rotated in step", .mayBlock, .tags(.live))
struct ConsumersTests {
    /// Records argv and environment of every command it wraps, then runs it.
    static let recorder = """
        #!/bin/bash
        log="$1"; shift
        { printf 'argv:'; printf ' %q' "$@"; printf '\\n'; env | sed 's/^/env: /'; } >> "$log"
        exec "$@"
        """

    /// The stand-in app: reads {"turn_secret": …} once at start, then hands out TURN credentials signed with it
    /// (an iceServers answer) on GET /ice, as LiveKit or any app with a shared secret does.
    static let app = """
        import base64, hashlib, hmac, http.server, json, sys, time
        config, port, turn = sys.argv[1], int(sys.argv[2]), sys.argv[3]
        secret = json.load(open(config))["turn_secret"].encode()
        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                user = "%d:app" % (int(time.time()) + 600)
                password = base64.b64encode(hmac.new(secret, user.encode(), hashlib.sha1).digest()).decode()
                body = json.dumps({"iceServers": [{"urls": [turn], "username": user, "credential": password}]})
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())
            def log_message(self, *a): pass
        http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
        """

    /// Restarts the app: stops the running one, starts it anew (it reads its file then); held while `hold` exists.
    static let restartApp = """
        #!/bin/bash
        dir="$1"
        while [ -e "$dir/hold-app" ]; do sleep 0.05; done
        [ -f "$dir/app.pid" ] && kill "$(cat "$dir/app.pid")" 2>/dev/null
        setsid "$2" "$dir/app.py" "$dir/apps/app.json" "$3" "$4" </dev/null >>"$dir/app.log" 2>&1 &
        echo $! > "$dir/app.pid"
        for i in $(seq 1 200); do (exec 3<>/dev/tcp/127.0.0.1/$3) 2>/dev/null && exit 0; sleep 0.05; done
        exit 1
        """

    struct Lab {
        let base: TurnkeeperDeployment
        let prosody: ProsodyServer
        let appPort: UInt16
        let foreign: TurnSecret
        var directory: TemporaryDirectory { base.directory }
        var recorded: String { (try? directory.read("recorded.log")) ?? "" }

        func stop() {
            if let pid = try? directory.read("app.pid"),
                let value = pid_t(pid.trimmingCharacters(in: .whitespacesAndNewlines))
            {
                kill(value, SIGTERM)
            }
            prosody.stop()
            base.stop()
        }

        /// What the app hands out now, from its own answer.
        func appCredential() async throws -> (username: String, password: String) {
            let answer = try await TurnServerClient.get("http://127.0.0.1:\(appPort)/ice")
            let object = try JSONSerialization.jsonObject(with: Data(answer.body)) as? [String: Any]
            let server = (object?["iceServers"] as? [[String: Any]])?.first
            guard let user = server?["username"] as? String, let password = server?["credential"] as? String else {
                throw TestFailure("the app handed out no credential")
            }
            return (user, password)
        }

        /// Every app hands out credentials coturn grants: Synapse, Prosody through a real XMPP client, the app.
        func everyAppAllocates(_ when: String) async throws {
            let synapse = try #require(base.synapse)
            guard
                case .credentials(let fromSynapse) = try await TurnServerClient.fetch(
                    homeserver: synapse.baseURL, accessToken: try #require(base.token))
            else { throw TestFailure("\(when): Synapse hands out nothing") }
            #expect(
                try await TURNAllocation.succeeds(
                    port: base.coturn.port, username: fromSynapse.username, password: fromSynapse.password),
                "\(when): Synapse's credentials")
            let services = try XMPPClient.turnServices(prosody)
            #expect(!services.isEmpty, "\(when): Prosody hands out no TURN service")
            for service in services {
                #expect(
                    try await TURNAllocation.succeeds(
                        port: base.coturn.port, username: service.username ?? "", password: service.password ?? ""),
                    "\(when): Prosody's credentials")
            }
            let app = try await appCredential()
            #expect(
                try await TURNAllocation.succeeds(
                    port: base.coturn.port, username: app.username, password: app.password),
                "\(when): the app's credentials")
        }
    }

    static func lab() throws -> Lab {
        var options = TurnkeeperDeployment.Options()
        options.realSynapse = true
        options.turnUserLifetime = "1h"
        options.margin = "1m"
        let base = try TurnkeeperDeployment(options)
        let directory = base.directory
        let original = base.original.withExposedBytes { String(decoding: $0, as: UTF8.self) }
        // The shared secret in coturn's database, as a working setup has it; and a secret another admin put there
        // by hand, for an app turnkeeper is not told about.
        let foreign = try TurnSecret.generate()
        let insert = try ProcessRunner.run(
            "/usr/bin/python3",
            [
                "-c",
                "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); [c.execute('insert into turn_secret(realm,value) "
                    + "values(?,?)', (sys.argv[2], line.strip())) for line in sys.stdin]; c.commit()",
                base.coturn.userDatabase, base.coturn.realm,
            ], stdin: original + "\n" + foreign.withExposedBytes { String(decoding: $0, as: UTF8.self) } + "\n")
        guard insert.status == 0 else { throw TestFailure("inserting the foreign secret: \(insert)") }

        // Prosody set up as an admin would before turnkeeper: the shared secret in prosody.cfg.lua.
        let prosody = try ProsodyServer(
            turnPort: base.coturn.port, globalLines: ["turn_external_secret = \"\(original)\""])
        let recorder = try directory.write("record.sh", recorder, mode: 0o755)
        let log = directory.file("recorded.log")

        // The app, started once with the shared secret in its file.
        let python = "/usr/bin/python3"
        let appPort = try LoopbackUDP.freePort(in: 34000...35000)
        try FileManager.default.createDirectory(atPath: directory.file("apps"), withIntermediateDirectories: true)
        try directory.write("app.py", app)
        let template = try directory.write("app.json.template", "{\"turn_secret\": {{turn_secret}}}\n")
        try directory.write("apps/app.json", "{\"turn_secret\": \"\(original)\"}\n", mode: 0o640)
        let restart = try directory.write("restart-app.sh", restartApp, mode: 0o755)
        let turnURI = "turn:127.0.0.1:\(base.coturn.port)?transport=udp"
        let started = try ProcessRunner.run(
            "/bin/bash", [restart, directory.path, python, String(appPort), turnURI])
        guard started.status == 0 else { throw TestFailure("the app did not start: \(started)") }

        var settings = base.settings
        let synapseRestart = settings.synapse?.restartCommand ?? []
        settings.synapse?.restartCommand = ["/bin/bash", recorder, log] + synapseRestart
        settings.consumers = [
            .init(
                name: "xmpp",
                kind: .prosody(
                    .init(
                        configFile: prosody.managedFile, prosodyctl: ["/bin/bash", recorder, log] + prosody.prosodyctl,
                        hosts: [prosody.host], turnHost: "127.0.0.1", turnPort: Int(base.coturn.port),
                        credentialLifetime: .minutes(30)))),
            .init(
                name: "app",
                kind: .file(
                    .init(
                        path: directory.file("apps/app.json"), template: template, format: .json, group: "nogroup",
                        mode: 0o640,
                        command: [
                            "/bin/bash", recorder, log, "/bin/bash", restart, directory.path, python,
                            String(appPort), turnURI,
                        ],
                        commandTimeout: .seconds(30), verifyURL: "http://127.0.0.1:\(appPort)/ice",
                        credentialLifetime: .hours(2)))),
        ]
        var deployment = base
        deployment.settings = settings
        try deployment.writeConfig()
        return Lab(base: deployment, prosody: prosody, appPort: appPort, foreign: foreign)
    }

    @Test(
        "Synapse, Prosody and an app switch together; old credentials work until retirement; the foreign secret stays")
    func rotateTogether() async throws {
        let lab = try Self.lab()
        defer { lab.stop() }
        let original = lab.base.original
        try await lab.everyAppAllocates("before the rotation")

        let check = try lab.base.run(["check"])
        #expect(check.stdout.contains("not turnkeeper's"), "\(check)")
        #expect(check.stdout.contains(lab.foreign.fingerprint), "\(check)")
        #expect(check.status == 1, "a foreign secret no consumer uses is a problem: \(check)")

        let rotated = try lab.base.run(["rotate"])
        #expect(rotated.status == 0, "\(rotated)")
        #expect(rotated.stdout.contains("must be listed under consumers:"), "\(rotated.stdout)")
        #expect(rotated.stdout.components(separatedBy: "must be listed").count == 2, "said once: \(rotated.stdout)")
        #expect(rotated.stdout.contains("step 4 (2 of 3): prosody consumer xmpp"), "\(rotated.stdout)")
        let current = try lab.base.currentSecret()
        #expect(current != original)
        // The overlap: the old secret is still accepted, the new one serves every app.
        #expect(try await lab.base.accepts(original))
        try await lab.everyAppAllocates("during the overlap")

        // The longest lifetime among the consumers is the app's 2 h: retirement is due after it, not after 1 h.
        let early = try lab.base.run(
            ["rotate", "--resume"], environment: try FakeTime.environment(offsetSeconds: 3600 + 120))
        #expect(early.status == 0, "\(early)")
        #expect(try await lab.base.accepts(original))
        let retired = try lab.base.run(
            ["rotate", "--resume"], environment: try FakeTime.environment(offsetSeconds: 7200 + 120))
        #expect(retired.status == 0, "\(retired)")
        #expect(try await !lab.base.accepts(original))
        #expect(try await lab.base.accepts(lab.foreign), "the foreign secret is never removed")
        try await lab.everyAppAllocates("after the retirement")

        let status = try lab.base.run(["status"])
        #expect(status.stdout.contains("\(lab.foreign.fingerprint)  coturn's SQLite user database"), "\(status)")
        #expect(status.stdout.contains("NOT turnkeeper's"), "\(status)")
        #expect(status.stdout.contains("prosody consumer xmpp: signs with \(current.fingerprint)"), "\(status)")
        #expect(status.stdout.contains("file consumer app: signs with \(current.fingerprint)"), "\(status)")
        // JSON: the rotation's keys and the inventory's side by side in one object.
        let json = try lab.base.run(["status", "--json"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(object["phase"] as? String == "idle" && object["current"] as? String == current.fingerprint)
        #expect(object["inventoryError"] == nil, "\(json)")
        let inventory = try #require(object["inventory"] as? [String: Any], "\(json)")
        let accepted = try #require(inventory["accepted"] as? [[String: Any]], "\(json)")
        let foreign = try #require(accepted.first { $0["fingerprint"] as? String == lab.foreign.fingerprint })
        #expect(foreign["managed"] as? Bool == false, "\(json)")
        let consumers = try #require(inventory["consumers"] as? [[String: Any]], "\(json)")
        #expect(
            Set(consumers.compactMap { $0["name"] as? String }) == ["synapse", "xmpp", "app"]
                && consumers.allSatisfy { $0["fingerprint"] as? String == current.fingerprint }, "\(json)")

        // No secret in any command's argv or environment, in any output, or in Prosody's log.
        let texts = [
            lab.recorded, rotated.stdout, rotated.stderr, early.stdout, retired.stdout, check.stdout,
            status.stdout, json.stdout, lab.prosody.log,
        ]
        #expect(lab.recorded.contains("argv:"), "the recorder saw no command")
        for secret in [original, current, lab.foreign] {
            let value = secret.withExposedBytes { String(decoding: $0, as: UTF8.self) }
            for text in texts { #expect(!text.contains(value), "a secret leaked") }
        }
        // The app's file as configured: 0640, root and the app's group.
        #expect(permissions(of: lab.directory.file("apps/app.json")) == 0o640)
        #expect(permissions(of: lab.prosody.managedFile) == 0o640)
    }

    @Test("SIGKILL between consumers: `rotate --resume` switches the rest, and every app ends on the new secret")
    func killedBetweenConsumers() async throws {
        let lab = try Self.lab()
        defer { lab.stop() }
        // The app's restart waits while hold-app exists: the kill lands after Prosody's switch, before the app's.
        try lab.directory.write("hold-app", "")
        let output = lab.directory.file("killed.out")
        let process = try ChildProcess(
            TurnkeeperBinary.path, ["rotate", "--config", lab.base.config], stdoutPath: output, stderrPath: output)
        func printed() -> String { (try? String(contentsOfFile: output, encoding: .utf8)) ?? "" }
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(120)
        while !printed().contains("step 4 (2 of 3)") {
            guard process.isRunning, clock.now < deadline else {
                throw TestFailure("no step 4 (2 of 3):\n\(printed())")
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        kill(process.pid, SIGKILL)
        #expect(process.wait(timeout: .seconds(60)) == 128 + SIGKILL)
        // Its held app restart dies with it, as on a crashed machine: the app still runs with its old file.
        _ = try ProcessRunner.run("/usr/bin/pkill", ["-KILL", "-f", lab.directory.file("restart-app.sh")])
        unlink(lab.directory.file("hold-app"))
        // Killed mid-way: every app still hands out credentials coturn grants (the app's old ones included).
        try await lab.everyAppAllocates("after the kill")

        let resumed = try lab.base.run(["rotate", "--resume"])
        #expect(resumed.status == 0, "\(resumed)")
        #expect(!resumed.stdout.contains("Synapse switched"), "Synapse was switched again: \(resumed.stdout)")
        #expect(resumed.stdout.contains("file consumer app"), "\(resumed.stdout)")
        let current = try lab.base.currentSecret()
        #expect(current != lab.base.original)
        let status = try lab.base.run(["status"])
        for consumer in ["Synapse", "prosody consumer xmpp", "file consumer app"] {
            #expect(status.stdout.contains("\(consumer): signs with \(current.fingerprint)"), "\(status)")
        }
        try await lab.everyAppAllocates("after the resume")
    }
}
