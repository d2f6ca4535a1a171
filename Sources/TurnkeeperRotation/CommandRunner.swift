import CSystemShims
import Foundation
import Glibc
import TurnkeeperCore

/// Runs an admin-configured command (argv, no shell) with a minimal environment and only standard input,
/// output and error open, so nothing of turnkeeper's own environment or descriptors (event loops, sockets,
/// the state directory, a store's database), and never a secret, reaches it.
enum CommandRunner {
    static func run(_ argv: [String], what: String, timeoutSeconds: Int = 180) async throws(TurnkeeperError) {
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
            try await Task.sleep(for: .seconds(timeoutSeconds))
            kill(pid, SIGKILL)
        }
        let waitError = await Self.waitForExit(pid)
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
    }

    /// Waits on a new thread until `pid` has exited, leaving it to be reaped; nil, or the errno of a failed wait.
    private static func waitForExit(_ pid: pid_t) async -> Int32? {
        await withCheckedContinuation { continuation in
            let thread = Thread {
                var info = siginfo_t()
                while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) != 0 {
                    let failure = errno
                    guard failure == EINTR else {
                        continuation.resume(returning: failure)
                        return
                    }
                }
                continuation.resume(returning: nil)
            }
            thread.name = "turnkeeper-wait"
            thread.start()
        }
    }
}
