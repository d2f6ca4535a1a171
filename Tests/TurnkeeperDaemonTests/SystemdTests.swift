import Foundation
import Glibc
import Logging
import Synchronization
import TestSupport
import Testing

@testable import TurnkeeperDaemon

@Suite("systemd notification and journal lines", .mayBlock)
struct SystemdTests {
    @Test("Messages reach a socket named by path and one in the abstract namespace; STOPPING ends the pings")
    func notifier() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let socket = try NotifySocket(in: directory)
        defer { socket.close() }
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": socket.path])
        #expect(notifier.isEnabled)
        notifier.ready(status: "starting")
        notifier.status("idle")
        notifier.status("idle")  // unchanged: not sent again
        notifier.watchdog()
        notifier.stopping(status: "bye")
        notifier.watchdog()  // after STOPPING: not sent
        try await socket.wait(for: "STOPPING", "1", timeout: .seconds(60))
        let texts = socket.messages.map(\.text)
        #expect(texts == ["READY=1\nSTATUS=starting", "STATUS=idle", "WATCHDOG=1", "STOPPING=1\nSTATUS=bye"])
    }

    @Test("An abstract socket (@name) is reached")
    func abstract() throws {
        let name = "turnkeeper-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = [0] + Array(name.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { target in
            for (index, byte) in bytes.enumerated() { target[index] = byte }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        #expect(bound == 0)
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        SystemdNotifier(environment: ["NOTIFY_SOCKET": "@" + name]).watchdog()
        var buffer = [UInt8](repeating: 0, count: 256)
        let count = recv(fd, &buffer, buffer.count, 0)
        #expect(count > 0 && String(decoding: buffer[0..<max(count, 0)], as: UTF8.self) == "WATCHDOG=1")
    }

    @Test("No NOTIFY_SOCKET, or a relative one: nothing is sent and nothing fails")
    func disabled() {
        #expect(!SystemdNotifier(environment: [:]).isEnabled)
        #expect(!SystemdNotifier(environment: ["NOTIFY_SOCKET": "relative/path"]).isEnabled)
        SystemdNotifier(environment: [:]).ready(status: "x")
    }

    @Test("Watchdog interval: half of WATCHDOG_USEC, only for the process WATCHDOG_PID names")
    func watchdogInterval() {
        #expect(SystemdNotifier.watchdogInterval(environment: ["WATCHDOG_USEC": "2000000"]) == .seconds(1))
        #expect(SystemdNotifier.watchdogInterval(environment: [:]) == nil)
        #expect(SystemdNotifier.watchdogInterval(environment: ["WATCHDOG_USEC": "0"]) == nil)
        #expect(SystemdNotifier.watchdogInterval(environment: ["WATCHDOG_USEC": "soon"]) == nil)
        let mine = ["WATCHDOG_USEC": "600", "WATCHDOG_PID": String(getpid())]
        #expect(SystemdNotifier.watchdogInterval(environment: mine) == .microseconds(300))
        let other = ["WATCHDOG_USEC": "600", "WATCHDOG_PID": String(getpid() + 1)]
        #expect(SystemdNotifier.watchdogInterval(environment: other) == nil)
    }

    @Test("Journal format only when JOURNAL_STREAM names standard output's device and inode")
    func journalDetection() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = try directory.write("out", "")
        let fd = open(path, O_WRONLY)
        defer { close(fd) }
        let stream = DaemonProcess.journalStream(for: path)
        #expect(JournalLogHandler.format(environment: ["JOURNAL_STREAM": stream], descriptor: fd) == .journal)
        #expect(JournalLogHandler.format(environment: [:], descriptor: fd) == .plain)
        // Inherited from a parent whose stdout was the journal, but ours is elsewhere now.
        #expect(JournalLogHandler.format(environment: ["JOURNAL_STREAM": "1:2"], descriptor: fd) == .plain)
        #expect(JournalLogHandler.format(environment: ["JOURNAL_STREAM": "garbage"], descriptor: fd) == .plain)
    }

    @Test("Each event is one line: a syslog priority for the journal, time and level otherwise; metadata kept")
    func lines() {
        let lines = LineCollector()
        var journal = Logger(label: "t") { _ in JournalLogHandler(format: .journal, sink: lines.append) }
        journal.logLevel = .debug
        journal.debug("d")
        journal.info("i")
        journal.notice("n")
        journal.warning("w")
        journal.error("two\nlines", metadata: ["uri": "turn:x"])
        journal.critical("c")
        #expect(lines.all == ["<7>d", "<6>i", "<5>n", "<4>w", "<3>two ⏎ lines uri=turn:x", "<2>c"])

        let plain = LineCollector()
        Logger(label: "t") { _ in JournalLogHandler(format: .plain, sink: plain.append) }.warning("careful")
        #expect(plain.all.count == 1)
        let line = plain.all.first ?? ""
        #expect(
            line.range(of: #"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC warning careful$"#, options: .regularExpression) != nil
        )
    }
}

final class LineCollector: Sendable {
    private let lines = Mutex<[String]>([])
    var all: [String] { lines.withLock { $0 } }
    @Sendable func append(_ line: String) { lines.withLock { $0.append(line) } }
}
