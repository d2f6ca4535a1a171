import Foundation
import Glibc
import Synchronization

/// A real Synapse from PyPI (installed in a venv by scripts/test.sh), on its own loopback port, with a
/// conf.d directory the test writes. Started with `-c homeserver.yaml -c conf.d/` as the Debian unit does.
public final class SynapseServer: Sendable {
    public let port: UInt16
    public let directory: TemporaryDirectory
    public let homeserverYAML: String
    public let confD: String
    /// The address it listens on: 127.0.0.1, or a NAT lab address inside `namespace`.
    public let address: String
    /// A network namespace of the NAT lab it runs in, or nil for the test's own.
    public let namespace: String?
    public var baseURL: String { "http://\(address):\(port)" }
    private let python: String
    private let registrationSecret: String
    private let process: Mutex<ChildProcess?> = Mutex(nil)

    /// The venv's python: $TURNKEEPER_SYNAPSE_PYTHON, or the one scripts/test.sh installs.
    public static func python() throws -> String {
        let path =
            ProcessInfo.processInfo.environment["TURNKEEPER_SYNAPSE_PYTHON"]
            ?? "\(NSHomeDirectory())/.cache/turnkeeper/synapse-venv/bin/python"
        guard access(path, X_OK) == 0 else {
            throw TestFailure("Synapse is not installed at \(path): run scripts/test.sh, which installs it from PyPI")
        }
        return path
    }

    /// Generates a config, writes `confFiles` (name → YAML) into conf.d next to the test's own overlay,
    /// starts Synapse and returns once `/health` answers.
    /// Under a supervisor loop that starts Synapse again whenever it exits, so a test can hand
    /// turnkeeper ``restartCommand`` as Synapse's restart command, as systemd would restart it.
    private let supervised: Bool

    /// argv that stops the running Synapse and returns once it has exited; the supervisor starts a new one.
    public var restartCommand: [String] { Supervisor.restartCommand(in: directory) }

    public init(
        confFiles: [String: String], supervised: Bool = false, namespace: String? = nil, address: String = "127.0.0.1"
    ) throws {
        self.supervised = supervised
        self.namespace = namespace
        self.address = address
        python = try Self.python()
        directory = try TemporaryDirectory("turnkeeper-synapse")
        port = namespace == nil ? try LoopbackUDP.freePort() : 8008
        homeserverYAML = directory.file("homeserver.yaml")
        confD = directory.file("conf.d")
        registrationSecret = UUID().uuidString
        let generate = try ProcessRunner.run(
            python,
            [
                "-m", "synapse.app.homeserver", "--server-name", "test.local", "--config-path", homeserverYAML,
                "--generate-config", "--report-stats=no", "--data-directory", directory.path,
            ],
            timeout: .seconds(120)
        )
        guard generate.status == 0 else { throw TestFailure("generating Synapse's config failed: \(generate)") }
        try FileManager.default.createDirectory(atPath: confD, withIntermediateDirectories: false)
        try directory.write(
            "log.yaml",
            """
            version: 1
            formatters: {plain: {format: '%(asctime)s %(name)s %(levelname)s %(message)s'}}
            handlers: {file: {class: logging.FileHandler, formatter: plain, filename: \(directory.file("synapse.log"))}}
            root: {level: INFO, handlers: [file]}
            disable_existing_loggers: false
            """
        )
        try directory.write(
            "conf.d/00-test.yaml",
            """
            listeners:
              - port: \(port)
                bind_addresses: ['\(address)']
                type: http
                x_forwarded: false
                resources: [{names: [client], compress: false}]
            log_config: \(directory.file("log.yaml"))
            trusted_key_servers: []
            suppress_key_server_warning: true
            registration_shared_secret: "\(registrationSecret)"
            enable_registration: false
            """
        )
        for (name, text) in confFiles {
            try directory.write("conf.d/\(name)", text)
        }
        try start()
    }

    /// Stops Synapse and starts it again on the same files, as `systemctl restart matrix-synapse` would:
    /// Synapse reads its TURN settings only at start.
    public func restart() throws {
        process.withLock { _ = $0?.terminate(grace: .seconds(15)) }
        try start()
    }

    private func start() throws {
        let run = inNamespace([python, "-m", "synapse.app.homeserver", "-c", homeserverYAML, "-c", confD + "/"])
        let child: ChildProcess
        if supervised {
            child = try Supervisor(directory: directory, command: run, logPath: directory.file("stdout.log")).start()
        } else {
            child = try ChildProcess(
                run[0],
                Array(run.dropFirst()),
                stdoutPath: directory.file("stdout.log"),
                stderrPath: directory.file("stdout.log")
            )
        }
        process.withLock { $0 = child }
        let wait = inNamespace([python, "-c", Self.waitScript, baseURL])
        let health = try ProcessRunner.run(wait[0], Array(wait.dropFirst()), timeout: .seconds(90))
        guard health.status == 0 else {
            let log = (try? String(contentsOfFile: directory.file("stdout.log"), encoding: .utf8)) ?? ""
            stop()
            throw TestFailure("Synapse did not become healthy: \(health)\n\(log.suffix(3000))")
        }
    }

    /// Registers `user` through the shared-secret admin API and returns its access token.
    public func register(_ user: String, password: String = "not-a-real-password") throws -> String {
        let register = inNamespace([python, "-c", Self.registerScript, baseURL, user, password])
        let output = try ProcessRunner.run(
            register[0],
            Array(register.dropFirst()),
            stdin: registrationSecret,
            timeout: .seconds(60)
        )
        guard output.status == 0 else { throw TestFailure("registering \(user) failed: \(output)") }
        return output.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// `argv`, run inside the namespace when there is one.
    private func inNamespace(_ argv: [String]) -> [String] {
        namespace.map { ["/usr/sbin/ip", "netns", "exec", $0] + argv } ?? argv
    }

    public var log: String { (try? String(contentsOfFile: directory.file("synapse.log"), encoding: .utf8)) ?? "" }

    public func stop() {
        if supervised, let supervisor = try? Supervisor(existingIn: directory) {
            process.withLock { if let loop = $0 { supervisor.stop(loop) } }
        }
        process.withLock { _ = $0?.terminate(grace: .seconds(15)) }
        directory.remove()
    }

    /// Polls /health every 100 ms, up to 80 s: Synapse's first start takes about 10 s.
    static let waitScript = """
        import sys, time, urllib.request
        deadline = time.monotonic() + 80
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(sys.argv[1] + "/health", timeout=2) as r:
                    if r.status == 200:
                        sys.exit(0)
            except Exception:
                pass
            time.sleep(0.1)
        sys.exit(1)
        """

    /// Synapse's shared-secret registration: GET a nonce, POST with an HMAC-SHA1 of it.
    static let registerScript = """
        import hashlib, hmac, json, sys, urllib.request
        base, user, password = sys.argv[1:4]
        secret = sys.stdin.read().strip().encode()
        url = base + "/_synapse/admin/v1/register"
        nonce = json.load(urllib.request.urlopen(url, timeout=30))["nonce"]
        mac = hmac.new(secret, b"\\0".join([nonce.encode(), user.encode(), password.encode(), b"notadmin"]),
                       hashlib.sha1).hexdigest()
        body = json.dumps({"nonce": nonce, "username": user, "password": password, "admin": False, "mac": mac})
        request = urllib.request.Request(url, data=body.encode(), headers={"Content-Type": "application/json"})
        print(json.load(urllib.request.urlopen(request, timeout=30))["access_token"])
        """
}
