import Foundation
import Glibc
import TestSupport
import Testing

/// An idle daemon sleeps until its schedule, a probe or a request wakes it (docs/performance.md).
@Suite("turnkeeper run at rest", .mayBlock, .tags(.live))
struct IdleTests {
    @Test("Nothing in Sources calls Task.sleep, which starts Dispatch's once-a-second worker monitor")
    func noTaskSleep() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Sources")
        let files = try #require(FileManager.default.enumerator(atPath: root.path)).compactMap { $0 as? String }
            .filter { $0.hasSuffix(".swift") }
        #expect(files.count > 50)
        var offenders: [String] = []
        for file in files {
            let text = try String(contentsOfFile: root.appendingPathComponent(file).path, encoding: .utf8)
            for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let code = line.trimmingCharacters(in: .whitespaces)
                guard !code.hasPrefix("//") else { continue }
                if code.contains("Task.sleep(") || code.contains("clock.sleep(") || code.contains("Clock().sleep(")
                    || code.contains("Clock.continuous.sleep(")
                {
                    offenders.append("\(file):\(number + 1)")
                }
            }
        }
        #expect(offenders == [], "use Pause.for / Pause.until (TurnkeeperExecution) instead")
    }

    @Test("After its first rotation and probe, the daemon wakes no more until something is due")
    func noWakeups() async throws {
        var options = TurnkeeperDeployment.Options()
        options.daemon = true
        options.probeInterval = "1h"
        options.interval = "7d"
        let deployment = try TurnkeeperDeployment(options)
        defer { deployment.stop() }
        let daemon = try DaemonProcess(config: deployment.config, in: deployment.directory)
        defer { daemon.stop() }
        try await daemon.waitForLog("step 4:", timeout: .seconds(180))
        try await daemon.waitForLog("probe passed", timeout: .seconds(180))

        // Context switches of the threads alive across a 5 s window. A once-a-second timer makes about 5 in every
        // window; work left over from the start ends within one. The best of three windows must be quiet.
        var windows: [Int] = []
        for _ in 0..<3 {
            let before = Self.switches(of: daemon.process.pid)
            try await Task.sleep(for: .seconds(5))
            let after = Self.switches(of: daemon.process.pid)
            windows.append(after.reduce(0) { sum, entry in sum + (entry.value - (before[entry.key] ?? entry.value)) })
            if windows.last! <= 1 { break }
        }
        #expect(windows.min()! <= 1, "context switches per 5 s window at rest: \(windows)\n\(daemon.log)")
        #expect(daemon.process.isRunning)
    }

    /// Voluntary plus involuntary context switches of each thread, by thread id.
    static func switches(of pid: pid_t) -> [String: Int] {
        let tasks = "/proc/\(pid)/task"
        var result: [String: Int] = [:]
        for thread in (try? FileManager.default.contentsOfDirectory(atPath: tasks)) ?? [] {
            guard let status = try? String(contentsOfFile: "\(tasks)/\(thread)/status", encoding: .utf8) else {
                continue
            }
            result[thread] = status.split(separator: "\n").filter { $0.contains("ctxt_switches:") }
                .compactMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) }
                .reduce(0, +)
        }
        return result
    }
}
