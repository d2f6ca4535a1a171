import NIOCore
import NIOPosix
import Synchronization
import TurnkeeperExecution
import TurnkeeperSTUN

/// One request waiting for its response. It ends once, with whichever comes first: the response, the
/// deadline, the end of the connection, or the task's cancellation. Given a way to retransmit (UDP), it sends again
/// meanwhile, after
/// ``STUNConnection/initialRTO`` and then twice as long each time (RFC 8489 §6.2.1).
///
/// The timers run on an event loop and the waiting task suspends once: no child tasks and no stream.
final class ResponseWaiter: Sendable {
    enum Outcome: Sendable {
        case response(DecodedSTUNMessage)
        case timedOut
        case connectionEnded
        case cancelled
    }

    private struct State {
        var continuation: CheckedContinuation<Outcome, Never>?
        /// The outcome, once there is one; set before the task waits if it came that early.
        var outcome: Outcome?
        var timers: [Scheduled<Void>] = []
        /// The task waits and its timers are set.
        var armed = false
    }

    private let state = Mutex(State())

    /// Ends the wait with `outcome`, unless it has ended already. Any thread.
    func resolve(_ outcome: Outcome) {
        let (continuation, timers) = state.withLock {
            state -> (CheckedContinuation<Outcome, Never>?, [Scheduled<Void>]) in
            guard state.outcome == nil else { return (nil, []) }
            state.outcome = outcome
            defer {
                state.continuation = nil
                state.timers = []
            }
            return (state.continuation, state.timers)
        }
        timers.forEach { $0.cancel() }
        continuation?.resume(returning: outcome)
    }

    /// Whether a task waits now, its timers set (for tests).
    var isWaiting: Bool { state.withLock { $0.armed && $0.outcome == nil } }

    /// Waits for the outcome; `retransmit`, if given, sends the request again on the RFC's schedule. The timers
    /// run on `loop`; by default the caller's loop if it is one of NIO's shared loops, else the next of them.
    func wait(
        until deadline: ContinuousClock.Instant, retransmit: (@Sendable () -> Void)?, on loop: (any EventLoop)? = nil
    ) async -> Outcome {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Outcome, Never>) in
                let early = state.withLock { state -> Outcome? in
                    if let outcome = state.outcome { return outcome }
                    state.continuation = continuation
                    return nil
                }
                if let early {
                    continuation.resume(returning: early)
                    return
                }
                let loop = loop ?? MultiThreadedEventLoopGroup.singleton.any()
                let remaining = Pause.nanoseconds(ContinuousClock.now.duration(to: deadline))
                schedule(loop.scheduleTask(in: .nanoseconds(max(remaining, 0))) { self.resolve(.timedOut) })
                if let retransmit {
                    scheduleRetransmission(on: loop, after: STUNConnection.initialRTO, retransmit)
                }
                state.withLock { $0.armed = true }
            }
        } onCancel: {
            resolve(.cancelled)
        }
    }

    private func scheduleRetransmission(
        on loop: any EventLoop, after rto: Duration, _ retransmit: @escaping @Sendable () -> Void
    ) {
        schedule(
            loop.scheduleTask(in: .nanoseconds(Pause.nanoseconds(rto))) {
                retransmit()
                self.scheduleRetransmission(on: loop, after: rto * 2, retransmit)
            })
    }

    /// Keeps `timer` to cancel when the wait ends; if it has ended already, cancels it now.
    private func schedule(_ timer: Scheduled<Void>) {
        let ended = state.withLock { state -> Bool in
            if state.outcome != nil { return true }
            state.timers.append(timer)
            return false
        }
        if ended { timer.cancel() }
    }
}
