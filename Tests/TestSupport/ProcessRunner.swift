import Foundation
import Glibc

/// What a finished child process left behind.
public struct ProcessOutput: Sendable, CustomStringConvertible {
    public let status: Int32
    public let stdout: String
    public let stderr: String

    public var description: String { "exit \(status)\n--- stdout\n\(stdout)\n--- stderr\n\(stderr)" }
}

/// Runs a program to completion with a deadline. Output goes to files, so a chatty child
/// can never block on a full pipe, and a hung child is killed when the deadline passes.
public enum ProcessRunner {
    public static func run(
        _ executable: String,
        _ arguments: [String],
        stdin: String? = nil,
        timeout: Duration = .seconds(30),
        environment: [String: String] = [:]
    ) throws -> ProcessOutput {
        let scratch = try TemporaryDirectory("turnkeeper-run")
        defer { scratch.remove() }
        let outPath = scratch.file("stdout")
        let errPath = scratch.file("stderr")
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)

        let inPath = scratch.file("stdin")
        _ = FileManager.default.createFile(atPath: inPath, contents: Data((stdin ?? "").utf8))
        let process = try ChildProcess(
            executable,
            arguments,
            stdinPath: inPath,
            stdoutPath: outPath,
            stderrPath: errPath,
            environment: environment
        )
        guard let status = process.wait(timeout: timeout) else {
            process.terminate(grace: .seconds(1))
            throw TestFailure("\(executable) \(arguments.joined(separator: " ")) did not finish within \(timeout)")
        }
        return ProcessOutput(
            status: status,
            stdout: (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        )
    }

    /// The absolute path of `name` on PATH, or a failure that says which package provides it.
    public static func which(_ name: String, package: String) throws -> String {
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let candidate = "\(directory)/\(name)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        throw TestFailure("\(name) is not installed: run scripts/test.sh, which installs \(package)")
    }
}

/// The `turnkeeper` binary that `swift build` put next to the test bundle.
public enum TurnkeeperBinary {
    public static var path: String {
        let executable =
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var directory = URL(fileURLWithPath: executable).deletingLastPathComponent()
        // Swift Testing may run from a helper inside the bundle; walk up to the build directory.
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent("turnkeeper").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            directory.deleteLastPathComponent()
        }
        return "turnkeeper"
    }

    public static func run(
        _ arguments: [String],
        stdin: String? = nil,
        timeout: Duration = .seconds(30),
        environment: [String: String] = [:]
    ) throws -> ProcessOutput {
        try ProcessRunner.run(path, arguments, stdin: stdin, timeout: timeout, environment: environment)
    }
}

/// An empty coturn user database with coturn's turn_secret table, made by Python's sqlite3 (independent of
/// turnkeeper's own SQLite code), for tests that need the file without a running coturn.
public enum CoturnDatabase {
    public static func create(at path: String) throws {
        try python(
            "import sqlite3, sys; sqlite3.connect(sys.argv[1]).execute(\"CREATE TABLE turn_secret (realm "
                + "varchar(127) default '', value varchar(256), primary key (realm, value))\")",
            [path], failure: "cannot create \(path)")
    }

    /// coturn's user database as Debian's package installs it (/usr/share/coturn/schema.sql), before coturn
    /// starts. Left to coturn, a new database gets its eight tables from the auth and admin threads after the
    /// listeners answer, each table a commit with its fsyncs: on a stalled machine a login read meets those
    /// writes (coturn sets no busy timeout) and is refused, its own static secret included (seen twice in
    /// CI-like runs, 49 s stalls).
    public static func createDebianSchema(at path: String) throws {
        let schema = "/usr/share/coturn/schema.sql"
        guard FileManager.default.fileExists(atPath: schema) else {
            throw TestFailure("\(schema) is missing: apt-get install coturn (scripts/test.sh does)")
        }
        try python(
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.executescript(open(sys.argv[2]).read()); "
                + "c.close()",
            [path, schema], failure: "cannot create \(path)")
    }

    /// Runs one SQL statement on `path` with Python's sqlite3.
    public static func execute(_ path: String, _ sql: String) throws {
        try python(
            "import sqlite3, sys; sqlite3.connect(sys.argv[1], isolation_level=None).execute(sys.argv[2]).fetchall()",
            [path, sql], failure: "cannot run SQL on \(path)")
    }

    /// `python3 -c script arguments…`, failing with `failure` and its output.
    private static func python(_ script: String, _ arguments: [String], failure: String) throws {
        let python = try ProcessRunner.which("python3", package: "python3")
        let ran = try ProcessRunner.run(python, ["-c", script] + arguments)
        guard ran.status == 0 else { throw TestFailure("\(failure): \(ran)") }
    }
}
