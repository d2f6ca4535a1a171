import CSystemShims
import NIOCore
import NIOPosix

/// Runs Swift concurrency's global jobs on NIO's singleton event loops instead of Dispatch's worker pool, whose
/// monitor would otherwise wake the process every second (docs/performance.md). swift-nio offers the same through
/// `NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()`, which finds the hook
/// with dlsym and so does nothing in a static-stdlib binary; this sets the same hook through a linked reference.
public enum NIOGlobalExecutor {
    /// Call first thing in `main`, before any task exists. Returns false when another hook is already set or the
    /// runtime is one this was not checked against; jobs then stay on Dispatch, which works, just not asleep.
    @discardableResult
    public static func install() -> Bool {
        #if compiler(<6.6)
        typealias Original = @convention(thin) (UnownedJob) -> Void
        typealias Hook = @convention(thin) (UnownedJob, Original) -> Void
        // `any()` prefers the event loop we are on: no thread hop for a job enqueued from one.
        let hook: Hook = { job, _ in MultiThreadedEventLoopGroup.singleton.any().executor.enqueue(ExecutorJob(job)) }
        guard let slot = turnkeeper_global_enqueue_hook(), slot.pointee == nil else { return false }
        withUnsafeBytes(of: hook) { slot.pointee = $0.load(as: UnsafeMutableRawPointer.self) }
        return true
        #else
        return false
        #endif
    }
}
