import Foundation
import Glibc

/// A real Prosody (Debian's `prosody` 0.12) on its own loopback c2s port, with mod_turn_external enabled and an
/// `Include` of conf.d/*.cfg.lua, as Debian's config has it. It runs as the `prosody` user (it refuses root) and
/// is stopped by PID. Users log in over plain c2s; ``XMPPClient`` asks for TURN credentials as a client does.
public final class ProsodyServer: Sendable {
    public let directory: TemporaryDirectory
    public let port: UInt16
    public let host: String
    public let configPath: String
    /// The file turnkeeper owns, as a prosody consumer's config_file.
    public let managedFile: String
    /// prosodyctl with this instance's config, as a prosody consumer's `prosodyctl`.
    public let prosodyctl: [String]
    private let process: ChildProcess

    /// `turnPort`: the coturn that mod_turn_external advertises. `globalLines` and `hostLines`: prosody.cfg.lua's
    /// own lines before and under its VirtualHost (the secret an admin set up before turnkeeper, for one).
    public init(
        turnPort: UInt16, host: String = "xmpp.test", users: [String: String] = ["alice": "alicepw"],
        globalLines: [String] = [], hostLines: [String] = []
    ) throws {
        let prosody = try ProcessRunner.which("prosody", package: "prosody")
        let prosodyctlPath = try ProcessRunner.which("prosodyctl", package: "prosody")
        directory = try TemporaryDirectory("prosody")
        self.host = host
        port = try LoopbackUDP.freePort(in: 33000...34000)
        configPath = directory.file("etc/prosody.cfg.lua")
        managedFile = directory.file("etc/conf.d/turnkeeper.cfg.lua")
        prosodyctl = [prosodyctlPath, "--config", configPath]
        for sub in ["etc/conf.d", "data", "log"] {
            try FileManager.default.createDirectory(atPath: directory.file(sub), withIntermediateDirectories: true)
        }
        let data = directory.file("data")
        self.turnPort = turnPort
        self.globalLines = globalLines
        let config = Self.config(
            directory: directory, port: port, host: host, turnPort: turnPort, globalLines: globalLines,
            hostLines: hostLines)
        try directory.write("etc/prosody.cfg.lua", config, mode: 0o640)
        // As Debian has it: the config root:prosody and readable by Prosody's group; its data its own.
        let group = try Self.id(of: "prosody")
        chmod(directory.path, 0o755)
        for path in [directory.file("etc"), directory.file("etc/conf.d")] {
            chown(path, 0, group.gid)
            chmod(path, 0o750)
        }
        chown(configPath, 0, group.gid)
        for path in [data, directory.file("log")] { chown(path, group.uid, group.gid) }
        for (user, password) in users {
            let registered = try ProcessRunner.run(
                prosodyctlPath, ["--config", configPath, "register", user, host, password])
            guard registered.status == 0 else { throw TestFailure("prosodyctl register failed: \(registered)") }
        }
        // setpriv execs Prosody in place, so the PID is Prosody's.
        process = try ChildProcess(
            "/usr/bin/setpriv",
            ["--reuid=prosody", "--regid=prosody", "--init-groups", prosody, "-F", "--config", configPath],
            stdoutPath: directory.file("log/console.log"), stderrPath: directory.file("log/console.log"))
        guard LoopbackUDP.tcpAccepts(port: port, timeout: .seconds(30)),
            Self.waitFor(path: "\(data)/prosody.sock", timeout: .seconds(30))
        else {
            _ = process.terminate(grace: .seconds(2))
            throw TestFailure("Prosody did not start: \(log)")
        }
    }

    private let turnPort: UInt16
    private let globalLines: [String]

    /// Rewrites prosody.cfg.lua with these lines under its VirtualHost (Prosody reads it at its next reload).
    public func setHostLines(_ hostLines: [String]) throws {
        let config = Self.config(
            directory: directory, port: port, host: host, turnPort: turnPort, globalLines: globalLines,
            hostLines: hostLines)
        try directory.write("etc/prosody.cfg.lua", config, mode: 0o640)
        chown(configPath, 0, try Self.id(of: "prosody").gid)
    }

    /// Stops Prosody (the directory stays, for a test that needs it gone while turnkeeper runs).
    public func stopProcess() { _ = process.terminate(grace: .seconds(5)) }

    private static func config(
        directory: TemporaryDirectory, port: UInt16, host: String, turnPort: UInt16, globalLines: [String],
        hostLines: [String]
    ) -> String {
        let data = directory.file("data")
        return """
            pidfile = "\(data)/prosody.pid"
            data_path = "\(data)"
            admin_socket = "\(data)/prosody.sock"
            log = { info = "\(directory.file("log/prosody.log"))" }
            c2s_ports = { \(port) }
            c2s_interfaces = { "127.0.0.1" }
            s2s_ports = { }
            http_ports = { }
            https_ports = { }
            c2s_require_encryption = false
            allow_unencrypted_plain_auth = true
            authentication = "internal_hashed"
            storage = "internal"
            modules_enabled = { "roster"; "saslauth"; "disco"; "ping"; "admin_shell"; "turn_external" }
            modules_disabled = { "s2s" }
            turn_external_host = "127.0.0.1"
            turn_external_port = \(turnPort)
            \(globalLines.joined(separator: "\n"))
            VirtualHost "\(host)"
            \(hostLines.joined(separator: "\n"))
            Include "conf.d/*.cfg.lua"

            """
    }

    public var log: String {
        ((try? directory.read("log/console.log")) ?? "") + ((try? directory.read("log/prosody.log")) ?? "")
    }

    /// Writes an extra included file (another app's, read in directory order beside turnkeeper's).
    public func include(_ name: String, _ text: String) throws {
        let path = try directory.write("etc/conf.d/\(name)", text, mode: 0o640)
        chown(path, 0, try Self.id(of: "prosody").gid)
    }

    public func stop() {
        _ = process.terminate(grace: .seconds(5))
        directory.remove()
    }

    static func id(of user: String) throws -> (uid: uid_t, gid: gid_t) {
        guard let entry = getpwnam(user) else { throw TestFailure("no user \(user): install prosody") }
        return (entry.pointee.pw_uid, entry.pointee.pw_gid)
    }

    private static func waitFor(path: String, timeout: Duration) -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while clock.now < deadline {
            if access(path, F_OK) == 0 { return true }
            usleep(50_000)
        }
        return false
    }
}

/// A real XMPP client (slixmpp from PyPI, in the tests' venv) that logs in and asks for external services
/// (XEP-0215), as Jitsi Meet and Conversations do.
public enum XMPPClient {
    public struct Service: Codable, Sendable {
        public var type: String
        public var host: String
        public var port: String
        public var transport: String?
        public var username: String?
        public var password: String?
    }

    static let script = """
        import asyncio, json, os, sys
        import slixmpp
        from slixmpp.xmlstream import ET
        jid, password, port = sys.argv[1], sys.stdin.readline().strip(), int(sys.argv[2])
        out = {"services": None, "error": None}
        class C(slixmpp.ClientXMPP):
            def __init__(self):
                super().__init__(jid, password)
                self.add_event_handler("session_start", self.start)
                self.add_event_handler("failed_auth", lambda e: self.fail("login refused"))
            def fail(self, why):
                out["error"] = why
                self.disconnect()
            async def start(self, event):
                try:
                    iq = self.Iq(stype="get", sto=self.boundjid.domain)
                    iq.append(ET.Element("{urn:xmpp:extdisco:2}services"))
                    answer = await iq.send(timeout=10)
                    out["services"] = [dict(s.attrib) for s in answer.xml.iter("{urn:xmpp:extdisco:2}service")]
                except Exception as e:
                    out["error"] = repr(e)
                self.disconnect()
        c = C()
        c.enable_plaintext = True
        c.enable_starttls = False
        c.enable_direct_tls = False
        c["feature_mechanisms"].unencrypted_plain = True
        c.connect(host="127.0.0.1", port=port)
        loop = asyncio.get_event_loop()
        loop.run_until_complete(asyncio.wait_for(c.disconnected, 30))
        print(json.dumps(out), flush=True)
        os._exit(0)
        """

    /// The TURN services `user`@`server.host` is given now (password through stdin, never argv).
    public static func turnServices(_ server: ProsodyServer, user: String = "alice", password: String = "alicepw")
        throws -> [Service]
    {
        let python = try SynapseServer.python()
        let output = try ProcessRunner.run(
            python, ["-c", script, "\(user)@\(server.host)", String(server.port)], stdin: password + "\n",
            timeout: .seconds(60))
        struct Answer: Codable {
            var services: [Service]?
            var error: String?
        }
        guard output.status == 0,
            let line = output.stdout.split(separator: "\n").last,
            let answer = try? JSONDecoder().decode(Answer.self, from: Data(line.utf8))
        else { throw TestFailure("the XMPP client failed: \(output)") }
        guard let services = answer.services else {
            throw TestFailure("the XMPP client got no answer: \(answer.error ?? "?")\n\(server.log.suffix(2000))")
        }
        return services.filter { $0.type == "turn" || $0.type == "turns" }
    }
}
