import CSystemShims
import FoundationEssentials
import Glibc
public import TurnkeeperCore

/// Runs an admin-configured command (argv, no shell) with a minimal environment and only standard input,
/// output and error open, so nothing of turnkeeper's own environment or descriptors (event loops, sockets,
/// the state directory, a store's database), and never a secret, reaches it.
public enum CommandRunner {
    /// Runs `argv` to a zero exit status. With `capture`, its standard output and error (up to 1 MiB, one
    /// pipe) are returned: server text, to be read, never printed as it is.
    @discardableResult
    public static func run(_ argv: [String], what: String, timeoutSeconds: Int = 180, capture: Bool = false)
        async throws(TurnkeeperError) -> [UInt8]
    {
        guard let executable = argv.first else {
            throw TurnkeeperError(
                .invalidArgument,
                "the \(what) command is empty; give it as a list, such as [systemctl, restart, matrix-synapse].")
        }
        var child: pid_t = 0
        let arguments: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        let variables: [String] = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"]
        let environment: [UnsafeMutablePointer<CChar>?] = variables.map { strdup($0) } + [nil]
        defer {
            arguments.forEach { free($0) }
            environment.forEach { free($0) }
        }
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
        // Descriptors opened without O_CLOEXEC (by us or by a library) would otherwise outlive the exec.
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var pipeEnds: [Int32] = [-1, -1]
        defer { for end in pipeEnds where end >= 0 { close(end) } }
        if capture {
            // Close-on-exec at once: another command spawned meanwhile must not inherit them.
            guard pipe(&pipeEnds) == 0, fcntl(pipeEnds[0], F_SETFD, FD_CLOEXEC) == 0,
                fcntl(pipeEnds[1], F_SETFD, FD_CLOEXEC) == 0
            else {
                throw TurnkeeperError(
                    .commandFailed, "cannot capture the \(what) command's output: \(errnoDescription(errno)).")
            }
            posix_spawn_file_actions_adddup2(&actions, pipeEnds[1], 1)
            posix_spawn_file_actions_adddup2(&actions, pipeEnds[1], 2)
        }
        let closing = turnkeeper_spawn_close_from(&actions, 3)
        guard closing == 0 else {
            throw TurnkeeperError(
                .commandFailed, "cannot prepare the \(what) command's descriptors: \(errnoDescription(closing)).")
        }
        let status = posix_spawnp(&child, executable, &actions, &attributes, arguments, environment)
        guard status == 0 else {
            throw TurnkeeperError(
                .commandFailed,
                "cannot run the \(what) command \(argv.joined(separator: " ")): \(errnoDescription(status)).")
        }
        // The wait blocks a thread of its own: never one of the cooperative pool, and never one of NIO's pool,
        // where a restart that takes minutes would hold up SQLite and file work. Cancellation cannot skip it: a
        // cancelled task still waits for the command, since a half-done restart is worse. A timer kills a command
        // that outlives its timeout; the child is reaped only after the timer is done, so the kill can never
        // reach another process that reused its pid.
        let pid = child
        let timer = Task {
            try await Pause.for(.seconds(timeoutSeconds))
            kill(pid, SIGKILL)
        }
        if capture {
            close(pipeEnds[1])
            pipeEnds[1] = -1
        }
        let (waitError, output) = await Self.waitForExit(
            pid, reading: capture ? pipeEnds[0] : -1, deadlineSeconds: timeoutSeconds + 1)
        timer.cancel()
        let timedOut = (try? await timer.value) != nil
        var exit: Int32 = 0
        if let waitError {
            throw TurnkeeperError(.commandFailed, "lost the \(what) command: \(errnoDescription(waitError)).")
        }
        guard waitpid(child, &exit, 0) == child else {
            let failure = errno
            throw TurnkeeperError(.commandFailed, "lost the \(what) command: \(errnoDescription(failure)).")
        }
        if timedOut {
            throw TurnkeeperError(
                .commandFailed,
                "the \(what) command \(argv.joined(separator: " ")) did not finish in \(timeoutSeconds) s; it was killed."
            )
        }
        let code = exit & 0x7F == 0 ? (exit >> 8) & 0xFF : 128 + (exit & 0x7F)
        guard code == 0 else {
            throw TurnkeeperError(
                .commandFailed,
                "the \(what) command \(argv.joined(separator: " ")) failed with exit status \(code). Run it by hand to see why."
            )
        }
        return output
    }

    /// Waits on a new thread until `pid` has exited, leaving it to be reaped: nil or the errno of a failed
    /// wait, and what it wrote to `reading` (when not -1) until that closed or the deadline passed (a child it
    /// left behind may hold the pipe open).
    private static func waitForExit(_ pid: pid_t, reading: Int32, deadlineSeconds: Int) async -> (Int32?, [UInt8]) {
        await withCheckedContinuation { continuation in
            let started = DetachedThread.start {
                var output: [UInt8] = []
                if reading >= 0 { output = Self.drain(reading, of: pid, deadlineSeconds: deadlineSeconds) }
                var info = siginfo_t()
                while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) != 0 {
                    let failure = errno
                    guard failure == EINTR else {
                        continuation.resume(returning: (failure, output))
                        return
                    }
                }
                continuation.resume(returning: (nil, output))
            }
            if !started { continuation.resume(returning: (EAGAIN, [])) }
        }
    }

    /// Reads `fd` until end of file, the deadline, or `pid`'s exit (then what is already there), keeping the
    /// first MiB. A background process the command left behind may hold the pipe open for good: its exit, not
    /// the pipe's end, is the command's end.
    private static func drain(_ fd: Int32, of pid: pid_t, deadlineSeconds: Int) -> [UInt8] {
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16_384)
        let deadline = WallClock.nowMilliseconds() + Int64(deadlineSeconds) * 1000
        var exited = false
        while true {
            let left = deadline - WallClock.nowMilliseconds()
            guard left > 0 else { break }
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, exited ? 0 : Int32(min(left, 100)))
            if ready < 0 && errno == EINTR { continue }
            guard ready >= 0 else { break }
            if ready == 0 {
                if exited { break }
                var info = siginfo_t()
                exited =
                    waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT | WNOHANG) == 0
                    && info._sifields._sigchld.si_pid == pid
                continue
            }
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            if output.count < 1 << 20 { output += buffer[0..<min(count, (1 << 20) - output.count)] }
        }
        return output
    }
}
