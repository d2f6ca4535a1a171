import NIOCore
import NIOEmbedded
import Synchronization
import Testing

@testable import TurnkeeperTURNClient

/// A request's wait on a test event loop whose time the test moves: the retransmission schedule and the deadline
/// are checked exactly, whatever the machine running the test is doing.
@Suite("A request's wait: response, deadline, retransmissions, cancellation", .timeLimit(.minutes(1)))
struct ResponseWaiterTests {
    final class Copies: Sendable {
        private let count = Atomic(0)
        var sent: Int { count.load(ordering: .relaxed) }
        func send() { count.add(1, ordering: .relaxed) }
    }

    /// Starts `waiter.wait` in a task and returns once it waits.
    private func waiting(
        _ waiter: ResponseWaiter, loop: NIOAsyncTestingEventLoop, deadline: Duration, copies: Copies?
    ) async throws -> Task<ResponseWaiter.Outcome, Never> {
        var retransmit: (@Sendable () -> Void)?
        if let copies { retransmit = { copies.send() } }
        let until = ContinuousClock.now + deadline
        let task = Task { await waiter.wait(until: until, retransmit: retransmit, on: loop) }
        // Until the task waits with its timers set: an event; the 120 s only guard against a broken wait.
        let giveUp = ContinuousClock.now + .seconds(120)
        while !waiter.isWaiting && ContinuousClock.now < giveUp { try await Task.sleep(for: .milliseconds(1)) }
        try #require(waiter.isWaiting, "the request never started waiting")
        return task
    }

    /// Timers cancelled from off the loop fail their promises on it: runs what that queued, then stops it.
    private static func shutDown(_ loop: NIOAsyncTestingEventLoop) async {
        await loop.run()
        await loop.shutdownGracefully()
    }

    @Test("An outcome that comes before the wait ends it at once")
    func early() async {
        let waiter = ResponseWaiter()
        waiter.resolve(.connectionEnded)
        let outcome = await waiter.wait(until: .now + .seconds(60), retransmit: { Issue.record("retransmitted") })
        #expect(outcome.isConnectionEnded)
    }

    @Test("Over UDP: copies at 0.5, 1.5 and 3.5 s (RFC 8489's doubling) and on, until the deadline ends the wait")
    func schedule() async throws {
        let loop = NIOAsyncTestingEventLoop()
        let copies = Copies()
        let waiter = ResponseWaiter()
        // The deadline is on the real clock and the timers on the test's: an hour, so that however long a busy
        // machine takes to start the task, the deadline is still far ahead when the test moves time.
        let task = try await waiting(waiter, loop: loop, deadline: .seconds(3600), copies: copies)
        await loop.advanceTime(by: .milliseconds(499))
        #expect(copies.sent == 0)
        await loop.advanceTime(by: .milliseconds(1))
        #expect(copies.sent == 1)
        await loop.advanceTime(by: .milliseconds(1000))
        #expect(copies.sent == 2)
        await loop.advanceTime(by: .milliseconds(2000))
        #expect(copies.sent == 3)
        await loop.advanceTime(by: TimeAmount.seconds(3600))
        #expect(await task.value.isTimedOut)
        // Nothing fires after the end.
        let sent = copies.sent
        #expect(sent > 3)
        await loop.advanceTime(by: TimeAmount.seconds(3600))
        #expect(copies.sent == sent)
        await Self.shutDown(loop)
    }

    @Test("An answer ends the wait and the retransmissions with it")
    func answered() async throws {
        let loop = NIOAsyncTestingEventLoop()
        let copies = Copies()
        let waiter = ResponseWaiter()
        let task = try await waiting(waiter, loop: loop, deadline: .seconds(3600), copies: copies)
        await loop.advanceTime(by: .milliseconds(500))
        waiter.resolve(.connectionEnded)
        waiter.resolve(.timedOut)  // a second outcome changes nothing
        #expect(await task.value.isConnectionEnded)
        await loop.advanceTime(by: TimeAmount.seconds(60))
        #expect(copies.sent == 1)
        await Self.shutDown(loop)
    }

    @Test("Cancelling the task ends the wait as cancelled, and nothing is sent after it")
    func cancelled() async throws {
        let loop = NIOAsyncTestingEventLoop()
        let copies = Copies()
        let waiter = ResponseWaiter()
        let task = try await waiting(waiter, loop: loop, deadline: .seconds(3600), copies: copies)
        await loop.advanceTime(by: TimeAmount.seconds(2))
        #expect(copies.sent == 2)
        task.cancel()
        #expect(await task.value.isCancelled)
        await loop.advanceTime(by: TimeAmount.seconds(3600))
        #expect(copies.sent == 2)
        await Self.shutDown(loop)
    }
}

extension ResponseWaiter.Outcome {
    fileprivate var isConnectionEnded: Bool { if case .connectionEnded = self { true } else { false } }
    fileprivate var isTimedOut: Bool { if case .timedOut = self { true } else { false } }
    fileprivate var isCancelled: Bool { if case .cancelled = self { true } else { false } }
}
