import Foundation
import Glibc

/// Debian's libfaketime (package faketime): a program run with ``environment(offsetSeconds:)`` sees the wall clock
/// shifted by that many seconds, while its monotonic clock (NIO's timers, timeouts) stays true.
public enum FakeTime {
    /// The multithreaded build of the library, where Debian installs it.
    public static func library() throws -> String {
        _ = try ProcessRunner.which("faketime", package: "faketime")
        for directory in ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib"] {
            let candidate = "\(directory)/faketime/libfaketimeMT.so.1"
            if access(candidate, R_OK) == 0 { return candidate }
        }
        throw TestFailure("libfaketimeMT.so.1 is not installed: run scripts/test.sh, which installs faketime")
    }

    /// Variables that shift the wall clock of a child by `offsetSeconds` (negative: back).
    ///
    /// FAKETIME_SHARED names a semaphore and a segment that do not exist: without the variable, libfaketime 0.9.10
    /// left the Swift binary without its arguments (it printed its root help). Seeing them missing, each faked
    /// process makes its own, named by its PID (`sweepStale` removes those of processes killed before cleaning up).
    /// The `faketime` command sets it too, but does not pass SIGTERM on to its child.
    public static func environment(offsetSeconds: Int64) throws -> [String: String] {
        sweepStale()
        return [
            "LD_PRELOAD": try library(),
            "FAKETIME": offsetSeconds < 0 ? String(offsetSeconds) : "+\(offsetSeconds)",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            "FAKETIME_SHARED": "/turnkeeper-test-none /turnkeeper-test-none",
        ]
    }

    /// Removes the semaphores and segments of faked processes that have exited without cleaning up (a test kills
    /// the binary with SIGKILL on purpose). Debian's 0.9.10 names them by PID, so a later process given a recycled
    /// PID could not create its own and exited 1 ("sem_open failed and recreation attempts failed"), measured
    /// with 176 such files left in /dev/shm by earlier runs.
    static func sweepStale() {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/dev/shm") else { return }
        for name in names {
            let pid: String
            if name.hasPrefix("faketime_shm_") {
                pid = String(name.dropFirst("faketime_shm_".count))
            } else if name.hasPrefix("sem.faketime_sem_") {
                pid = String(name.dropFirst("sem.faketime_sem_".count))
            } else {
                continue
            }
            guard let number = pid_t(pid), number > 0, kill(number, 0) == -1, errno == ESRCH else { continue }
            unlink("/dev/shm/" + name)
        }
    }

    /// The same, as `/usr/bin/env` arguments to put in front of a command.
    public static func envArguments(offsetSeconds: Int64) throws -> [String] {
        ["/usr/bin/env"]
            + (try environment(offsetSeconds: offsetSeconds)).sorted { $0.key < $1.key }.map {
                "\($0.key)=\($0.value)"
            }
    }
}
