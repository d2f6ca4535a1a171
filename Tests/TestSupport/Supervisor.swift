import Foundation

/// A bash loop that starts a server again whenever it exits, as systemd's Restart= would, so a test can
/// give turnkeeper ``restartCommand`` as the server's restart command. Bounded to 200 starts.
public struct Supervisor: Sendable {
    public let directory: TemporaryDirectory

    /// argv that stops the running server and returns once it has exited; the loop then starts a new one.
    public var restartCommand: [String] { Self.restartCommand(in: directory) }

    static func restartCommand(in directory: TemporaryDirectory) -> [String] {
        ["/bin/bash", directory.file("restart.sh")]
    }

    /// The supervisor already written into `directory`.
    init(existingIn directory: TemporaryDirectory) throws {
        guard FileManager.default.fileExists(atPath: directory.file("restart.sh")) else {
            throw TestFailure("no supervisor in \(directory.path)")
        }
        self.directory = directory
    }

    /// Writes the loop and the restart script for `command`, its output appended to `logPath`.
    public init(directory: TemporaryDirectory, command: [String], logPath: String) throws {
        self.directory = directory
        try directory.write(
            "supervise.sh",
            """
            for i in $(seq 1 200); do
                [ -e \(directory.file("stop")) ] && exit 0
                \(command.joined(separator: " ")) >>\(logPath) 2>&1 &
                echo $! >\(directory.file("supervised.pid"))
                wait $!
            done
            """
        )
        try directory.write(
            "restart.sh",
            """
            pid=$(cat \(directory.file("supervised.pid")))
            kill -TERM "$pid" || exit 1
            for i in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.1; done
            exit 1
            """
        )
    }

    public func start() throws -> ChildProcess {
        try ChildProcess("/bin/bash", [directory.file("supervise.sh")])
    }

    /// Ends the loop and the server it runs.
    public func stop(_ loop: ChildProcess) {
        _ = FileManager.default.createFile(atPath: directory.file("stop"), contents: nil)
        _ = try? ProcessRunner.run("/bin/bash", [directory.file("restart.sh")], timeout: .seconds(40))
        loop.terminate()
    }
}

/// Another process holding an exclusive lock on an SQLite database until ``release()``, as a stuck admin
/// tool or a backup would. Waits for the lock to be taken before returning.
public final class SQLiteLockHolder: Sendable {
    private let process: ChildProcess
    private let releaseMarker: String

    public init(database: String, in directory: TemporaryDirectory) throws {
        let python = try ProcessRunner.which("python3", package: "python3")
        let locked = directory.file("sqlite-locked")
        releaseMarker = directory.file("sqlite-release")
        process = try ChildProcess(
            python,
            [
                "-c",
                """
                import os, sqlite3, sys, time
                db = sqlite3.connect(sys.argv[1], isolation_level=None)
                db.execute("BEGIN EXCLUSIVE")
                open(sys.argv[2], "w").close()
                deadline = time.monotonic() + 30
                while not os.path.exists(sys.argv[3]) and time.monotonic() < deadline:
                    time.sleep(0.02)
                db.execute("ROLLBACK")
                """,
                database, locked, releaseMarker,
            ]
        )
        let deadline = Date().addingTimeInterval(10)
        while !FileManager.default.fileExists(atPath: locked) && Date() < deadline { usleep(10_000) }
        guard FileManager.default.fileExists(atPath: locked) else {
            process.terminate()
            throw TestFailure("the lock holder never took the lock on \(database)")
        }
    }

    /// Lets go of the lock; returns the holder's exit status.
    @discardableResult
    public func release() -> Int32? {
        _ = FileManager.default.createFile(atPath: releaseMarker, contents: nil)
        return process.wait(timeout: .seconds(10))
    }

    deinit { process.terminate(grace: .seconds(1)) }
}
