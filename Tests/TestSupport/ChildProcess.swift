import CSystemShims
import Foundation
import Glibc
import Synchronization

/// A child process started with `posix_spawn`, with an empty signal mask and default signal handlers.
///
/// Foundation's `Process` hands children the spawning thread's blocked-signal mask, so a coturn started
/// through it never sees SIGTERM. A thread blocked in `waitpid` reports the exit as an event. Children get
/// only standard input, output and error: tests run in parallel, and a socket another test holds must not
/// live on in a daemon this one starts (nor count against its descriptor limit).
public final class ChildProcess: Sendable {
    public let pid: pid_t
    private let exitStatus = Mutex<Int32?>(nil)
    private let exited = DispatchSemaphore(value: 0)

    /// Starts `executable` with `arguments`; stdin from `stdinPath` (default /dev/null), stdout and
    /// stderr appended to the given files (default /dev/null).
    public init(
        _ executable: String,
        _ arguments: [String],
        stdinPath: String = "/dev/null",
        stdoutPath: String = "/dev/null",
        stderrPath: String = "/dev/null",
        environment extra: [String: String] = [:]
    ) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, stdinPath, O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdoutPath, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, stderrPath, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        guard turnkeeper_spawn_close_from(&actions, 3) == 0 else { throw TestFailure("posix_spawn close-from failed") }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var variables = ProcessInfo.processInfo.environment
        for (key, value) in extra { variables[key] = value }
        let envp = variables.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { envp.forEach { free($0) } }
        var child: pid_t = 0
        let result = posix_spawn(&child, executable, &actions, &attributes, argv, envp)
        guard result == 0 else {
            throw TestFailure("cannot start \(executable): \(String(cString: strerror(result)))")
        }
        pid = child
        let spawned = child
        let thread = Thread { [self] in
            var status: Int32 = 0
            while waitpid(spawned, &status, 0) < 0 && errno == EINTR {}
            // Exited: the code; killed by a signal: 128 + the signal, as a shell reports it.
            let code = status & 0x7F == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
            exitStatus.withLock { $0 = code }
            exited.signal()
        }
        thread.start()
    }

    public var isRunning: Bool { exitStatus.withLock { $0 } == nil }

    /// Waits for the exit until `timeout`; the exit status, or nil if it is still running.
    public func wait(timeout: Duration) -> Int32? {
        let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
        guard exited.wait(timeout: .now() + seconds) == .success else { return nil }
        exited.signal()  // later waits return at once
        return exitStatus.withLock { $0 }
    }

    /// Sends `signal` if it still runs; does not wait.
    public func signal(_ signal: Int32) {
        if isRunning { kill(pid, signal) }
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`. Returns the exit status.
    @discardableResult
    public func terminate(grace: Duration = .seconds(5)) -> Int32 {
        if isRunning { kill(pid, SIGTERM) }
        if let status = wait(timeout: grace) { return status }
        kill(pid, SIGKILL)
        return wait(timeout: .seconds(60)) ?? -1
    }
}
