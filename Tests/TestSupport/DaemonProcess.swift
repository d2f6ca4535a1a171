import Foundation
import Glibc

/// `turnkeeper run` as a child process, its output in a file the test reads as it grows.
public final class DaemonProcess: Sendable {
    public let process: ChildProcess
    public let logPath: String

    /// With `journal`, JOURNAL_STREAM names the log file's device and inode, as systemd does for the journal.
    public init(
        config: String, in directory: TemporaryDirectory, environment: [String: String] = [:], journal: Bool = false
    ) throws {
        logPath = directory.file("daemon-\(UUID().uuidString.prefix(8)).log")
        _ = try directory.write(String(logPath.split(separator: "/").last!), "")
        var environment = environment
        if journal { environment["JOURNAL_STREAM"] = Self.journalStream(for: logPath) }
        process = try ChildProcess(
            TurnkeeperBinary.path, ["run", "--config", config], stdoutPath: logPath, stderrPath: logPath,
            environment: environment)
    }

    /// "device:inode" of a file, as systemd puts it in JOURNAL_STREAM.
    public static func journalStream(for path: String) -> String {
        var info = stat()
        stat(path, &info)
        return "\(info.st_dev):\(info.st_ino)"
    }

    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// The port of /healthz and /metrics, read from the daemon's "serving" line. Tests give the daemon
    /// `127.0.0.1:0`: a port chosen by the test could be taken by another process before the daemon binds it.
    /// Throws until the line is logged (it comes before "ready:").
    public var port: Int {
        get throws {
            guard let port = Self.servingPort(in: log) else {
                throw TestFailure("the daemon has not logged the address it serves on:\n\(log.suffix(3000))")
            }
            return port
        }
    }

    /// The port in "serving /healthz, /readyz and /metrics ... on http://HOST:PORT", or nil before that line.
    public static func servingPort(in log: String) -> Int? {
        guard let line = log.split(separator: "\n").first(where: { $0.contains("serving /healthz") }),
            let url = line.range(of: "http://")
        else { return nil }
        let address = line[url.upperBound...].prefix { !$0.isWhitespace && $0 != "\"" }
        guard let colon = address.lastIndex(of: ":") else { return nil }
        return Int(address[address.index(after: colon)...])
    }

    /// GET `path` on the daemon's listener.
    public func get(_ path: String, timeoutSeconds: Int = 30) throws -> HTTPGet.Answer {
        try HTTPGet.get(port: port, path: path, timeoutSeconds: timeoutSeconds)
    }

    public func occurrences(of text: String) -> Int { log.components(separatedBy: text).count - 1 }

    /// Waits until the log holds `text` at least `count` times; fails with the log if the daemon exits or
    /// the time runs out.
    public func waitForLog(_ text: String, count: Int = 1, timeout: Duration) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while occurrences(of: text) < count {
            guard process.isRunning else {
                throw TestFailure("the daemon exited before logging \"\(text)\" ×\(count):\n\(log.suffix(4000))")
            }
            guard clock.now < deadline else {
                throw TestFailure("no \"\(text)\" ×\(count) within \(timeout):\n\(log.suffix(4000))")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    public func signal(_ number: Int32) { kill(process.pid, number) }

    /// The daemon's command line and environment as the kernel shows them to every local user.
    public var procfsView: String {
        let argv = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(process.pid)/cmdline"))) ?? Data()
        let environment = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(process.pid)/environ"))) ?? Data()
        return String(decoding: argv + environment, as: UTF8.self)
    }

    public func stop() { process.terminate(grace: .seconds(60)) }
}

/// A minimal HTTP/1.0 GET on loopback, with a deadline: enough for /healthz, /readyz and /metrics.
public enum HTTPGet {
    public struct Answer: Sendable {
        public var status: Int
        public var body: String
    }

    public static func get(port: Int, path: String, timeoutSeconds: Int = 30) throws -> Answer {
        let fd = try LoopbackTCP.connect(port: port, timeoutSeconds: timeoutSeconds)
        defer { close(fd) }
        let request = Array("GET \(path) HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".utf8)
        guard send(fd, request, request.count, Int32(MSG_NOSIGNAL)) == request.count else {
            throw TestFailure("cannot send to 127.0.0.1:\(port)")
        }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count < 0 { throw TestFailure("reading 127.0.0.1:\(port)\(path): errno \(errno)") }
            if count == 0 { break }
            response += buffer[0..<count]
        }
        let text = String(decoding: response, as: UTF8.self)
        guard let headEnd = text.range(of: "\r\n\r\n"),
            let status = Int(text.split(separator: " ").dropFirst().first ?? "")
        else { throw TestFailure("not an HTTP response from 127.0.0.1:\(port)\(path): \(text.prefix(200))") }
        return Answer(status: status, body: String(text[headEnd.upperBound...]))
    }
}

/// Prometheus text read by prometheus_client's own parser (from Synapse's venv: Synapse depends on it).
public enum PrometheusText {
    public struct Sample: Sendable, Codable {
        public var name: String
        public var labels: [String: String]
        public var value: Double
    }

    public struct Family: Sendable, Codable {
        public var name: String
        public var type: String
        public var samples: [Sample]
    }

    public static func parse(_ text: String) throws -> [Family] {
        let script = """
            import json, sys
            from prometheus_client.parser import text_string_to_metric_families
            out = []
            for family in text_string_to_metric_families(sys.stdin.read()):
                out.append({"name": family.name, "type": family.type,
                            "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in family.samples]})
            print(json.dumps(out))
            """
        let output = try ProcessRunner.run(try SynapseServer.python(), ["-c", script], stdin: text)
        guard output.status == 0 else { throw TestFailure("prometheus_client refused the metrics:\n\(output)") }
        return try JSONDecoder().decode([Family].self, from: Data(output.stdout.utf8))
    }
}

extension Array where Element == PrometheusText.Family {
    /// The samples named `name` (a counter's samples carry the `_total` suffix) whose labels include `labels`.
    public func samples(_ name: String, _ labels: [String: String] = [:]) -> [PrometheusText.Sample] {
        flatMap(\.samples).filter { sample in
            sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value }
        }
    }

    public func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        samples(name, labels).first?.value
    }
}
