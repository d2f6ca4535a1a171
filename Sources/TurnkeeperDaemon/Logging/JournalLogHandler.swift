import Glibc
public import Logging
import Synchronization
import TurnkeeperCore

/// One log line per event, on standard output. Under systemd (JOURNAL_STREAM names our stdout) each line
/// starts with its syslog priority, `<6>`, so the journal files it at the right level and adds its own time;
/// anywhere else lines carry a UTC time and the level in words. Callers never pass secrets: only fingerprints.
public struct JournalLogHandler: LogHandler {
    public enum Format: Sendable {
        case journal
        case plain
    }

    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let format: Format
    private let sink: @Sendable (String) -> Void

    public init(format: Format, sink: @escaping @Sendable (String) -> Void = StandardOutput.writeLine) {
        self.format = format
        self.sink = sink
    }

    /// `.journal` when JOURNAL_STREAM is set and matches standard output's device and inode, as
    /// systemd.exec(5) says to check; `.plain` otherwise (a terminal, a pipe, a file).
    public static func format(environment: [String: String], descriptor: Int32 = 1) -> Format {
        guard let stream = environment["JOURNAL_STREAM"] else { return .plain }
        let parts = stream.split(separator: ":")
        var info = stat()
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]),
            fstat(descriptor, &info) == 0
        else { return .plain }
        return UInt64(info.st_dev) == device && UInt64(info.st_ino) == inode ? .journal : .plain
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        let fields = merged.sorted { $0.key < $1.key }.map { " \($0.key)=\($0.value)" }.joined()
        // A newline would start a journal entry without a priority; keep one event on one line.
        let text = (event.message.description + fields).replacing("\n", with: " ⏎ ")
        switch format {
        case .journal:
            sink("<\(Self.priority(event.level))>\(text)")
        case .plain:
            sink("\(WallClock.utcString(seconds: WallClock.nowSeconds())) \(event.level) \(text)")
        }
    }

    /// syslog(3) priorities, as sd-daemon(3) expects them.
    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }
}

/// Whole lines to file descriptor 1 with one write(2) each, so threads never interleave within a line.
public enum StandardOutput {
    private static let lock = Mutex<Void>(())

    @Sendable public static func writeLine(_ line: String) {
        var bytes = Array((line + "\n").utf8)
        lock.withLock { _ in
            var offset = 0
            while offset < bytes.count {
                let written = bytes.withUnsafeMutableBytes {
                    Glibc.write(1, $0.baseAddress! + offset, $0.count - offset)
                }
                if written < 0 && errno == EINTR { continue }
                if written <= 0 { return }
                offset += written
            }
        }
    }
}
