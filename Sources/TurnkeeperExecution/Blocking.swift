import NIOPosix

/// Work that blocks a thread (file reads, YAML parsing, fsync) runs on NIO's thread pool, never on Swift's
/// cooperative pool: with 2 cores that pool has 2 threads, and one blocked call would stall half of all async work
/// (the health listener, the watchdog, SIGTERM).
public enum Blocking {
    public static func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await NIOThreadPool.singleton.runIfActive { try work() }
    }
}
