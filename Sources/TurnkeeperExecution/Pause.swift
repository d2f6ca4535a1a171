import NIOCore
import NIOPosix

/// Sleeps timed on NIO's event loops. `Task.sleep` hands its timer to Dispatch, and the first job Dispatch runs
/// starts its worker-pool monitor, a timer that then wakes the process every second for good: an idle daemon
/// must never call it (docs/performance.md). A test keeps `Task.sleep` out of Sources.
public enum Pause {
    /// Like `Task.sleep(for:)`: throws `CancellationError` when the task is cancelled.
    public static func `for`(_ duration: Duration) async throws {
        try Task.checkCancellation()
        let nanoseconds = Self.nanoseconds(duration)
        guard nanoseconds > 0 else { return }
        let scheduled = MultiThreadedEventLoopGroup.singleton.any().scheduleTask(in: .nanoseconds(nanoseconds)) {}
        try await withTaskCancellationHandler {
            do {
                try await scheduled.futureResult.get()
            } catch {
                throw CancellationError()
            }
        } onCancel: {
            scheduled.cancel()
        }
    }

    /// Until `deadline` on the continuous clock.
    public static func until(_ deadline: ContinuousClock.Instant) async throws {
        try await Self.for(ContinuousClock.now.duration(to: deadline))
    }

    /// The duration in nanoseconds, saturating (a Duration can outlast Int64 nanoseconds: about 292 years).
    public static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        let (total, overflow2) = whole.addingReportingOverflow(attoseconds / 1_000_000_000)
        return overflow2 ? (whole < 0 ? .min : .max) : total
    }
}
