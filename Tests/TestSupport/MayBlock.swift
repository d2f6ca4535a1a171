import Dispatch
import Testing

/// Runs a test's async work (and its child tasks') on Dispatch's global threads instead of Swift's cooperative
/// pool, which has one thread per core: two on the test machine.
///
/// End-to-end tests wait for child processes (turnkeeper, coturn's client) and files in plain blocking calls.
/// On the cooperative pool, two such tests running in parallel hold both of its threads, and every other test's
/// async work (NIO's answers, timers, Synapse fetches) stalls until they finish. Dispatch adds threads while
/// its workers are blocked, so a waiting test holds only a thread of its own.
public struct MayBlockTrait: SuiteTrait, TestTrait, TestScoping {
    public var isRecursive: Bool { true }

    public func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        try await withTaskExecutorPreference(BlockingTolerantExecutor.shared) { try await function() }
    }
}

extension Trait where Self == MayBlockTrait {
    /// The test blocks on child processes or files; its async work runs off the cooperative pool.
    public static var mayBlock: Self { MayBlockTrait() }
}

/// Jobs on a concurrent Dispatch queue, whose thread pool grows while its threads are blocked.
public final class BlockingTolerantExecutor: TaskExecutor {
    public static let shared = BlockingTolerantExecutor()
    private let queue = DispatchQueue(label: "turnkeeper.tests.may-block", attributes: .concurrent)

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        queue.async { job.runSynchronously(on: executor) }
    }
}

extension Tag {
    /// Starts real parts (the turnkeeper binary, coturn, Synapse, Redis, PostgreSQL, a NAT lab); the rest of
    /// the suite runs in-process. `swift test --filter` by suite, or these tags in an IDE, picks one side.
    @Tag public static var live: Self
}
