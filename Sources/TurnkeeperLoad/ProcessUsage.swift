import Glibc
import TurnkeeperCore
import TurnkeeperExecution

/// CPU and memory of this process and of coturn, for a step's report. /proc is read off the event loops.
enum ProcessUsage {
    static func ownCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
            + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }

    /// utime + stime of a process, from /proc/PID/stat (fields 14 and 15, after the command in parentheses).
    static func cpuSeconds(_ pid: Int32) async -> Double? {
        guard let file = try? await Blocking.run({ try FileContents.read("/proc/\(pid)/stat", limit: 4096) }),
            case let text = String(decoding: file.bytes, as: UTF8.self),
            let close = text.lastIndex(of: ")")
        else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    static func residentBytes(_ pid: Int32) async -> Int? {
        guard let file = try? await Blocking.run({ try FileContents.read("/proc/\(pid)/status", limit: 16384) }),
            case let text = String(decoding: file.bytes, as: UTF8.self),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
        else { return nil }
        return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }.map { $0 * 1024 }
    }

    /// The command name of a process (/proc/PID/comm), to check that a PID given as coturn's is a turnserver.
    static func command(_ pid: Int32) async -> String? {
        try? await Blocking.run { commandNow(pid) }
    }

    /// The PIDs whose command name is `command`: /proc listed and each comm read in one trip to the pool.
    static func pids(of command: String) async -> [Int32] {
        (try? await Blocking.run {
            guard let directory = opendir("/proc") else { return [] }
            defer { closedir(directory) }
            var found: [Int32] = []
            while let entry = readdir(directory) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { bytes in
                    String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
                }
                if let pid = Int32(name), pid > 0, commandNow(pid) == command { found.append(pid) }
            }
            return found
        }) ?? []
    }

    /// Blocking: call on the pool.
    private static func commandNow(_ pid: Int32) -> String? {
        guard let file = try? FileContents.read("/proc/\(pid)/comm", limit: 256) else { return nil }
        return String(decoding: file.bytes.filter { $0 != 0x0A }, as: UTF8.self)
    }
}
