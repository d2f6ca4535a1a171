import TestSupport
import Testing
import TurnkeeperRotation

@testable import TurnkeeperDaemon

@Suite("Rotation schedule and backoff", .mayBlock)
struct RotationScheduleTests {
    let schedule = RotationSchedule(interval: 3600, backoff: Backoff(initial: 60, maximum: 3600))

    @Test("Never rotated: rotate at once (the secret was set by hand)")
    func neverRotated() {
        let action = schedule.next(status: RotationStatus(phase: "idle"), now: 1000, failures: 0, lastFailure: nil)
        #expect(action == .init(at: 1000, rotate: true))
    }

    @Test("Rotated before: the next rotation is one interval after the last; a missed one is due now")
    func interval() {
        let recent = RotationStatus(phase: "idle", lastRotation: 1000)
        #expect(
            schedule.next(status: recent, now: 2000, failures: 0, lastFailure: nil) == .init(at: 4600, rotate: true))
        // Stopped for a day: the deadline is in the past, so it acts at once.
        let missed = schedule.next(status: recent, now: 90_000, failures: 0, lastFailure: nil)
        #expect(missed.at <= 90_000 && missed.rotate)
    }

    @Test("A retirement before the next rotation comes first, and only retires")
    func retirementFirst() {
        let status = RotationStatus(
            phase: "idle",
            retiring: [.init(fingerprint: "a", retiresAt: 1700), .init(fingerprint: "b", retiresAt: 1500)],
            lastRotation: 1000)
        #expect(
            schedule.next(status: status, now: 1100, failures: 0, lastFailure: nil) == .init(at: 1500, rotate: false))
    }

    @Test("A rotation left half-way is finished at once, without starting another")
    func inFlight() {
        for phase in ["adding", "verifying", "switching"] {
            let status = RotationStatus(phase: phase, lastRotation: 1000)
            #expect(
                schedule.next(status: status, now: 1200, failures: 0, lastFailure: nil)
                    == .init(at: 1200, rotate: false))
        }
    }

    @Test("After failures the next attempt waits: 60 s, 120 s, 240 s, … capped at the maximum")
    func backoff() {
        let backoff = Backoff(initial: 60, maximum: 3600)
        #expect((0...8).map { backoff.delay(afterFailures: $0) } == [0, 60, 120, 240, 480, 960, 1920, 3600, 3600])
        #expect(backoff.delay(afterFailures: 10_000) == 3600)
        let status = RotationStatus(phase: "idle")
        #expect(
            schedule.next(status: status, now: 5000, failures: 3, lastFailure: 4900) == .init(at: 5140, rotate: true))
        // The backoff never brings a deadline forward.
        let later = RotationStatus(phase: "idle", lastRotation: 5000)
        #expect(schedule.next(status: later, now: 5000, failures: 1, lastFailure: 4990).at == 8600)
    }

    @Test("Odd limits are made sane: at least 1 s, and the cap never below the start")
    func saneBackoff() {
        #expect(Backoff(initial: 0, maximum: 0).delay(afterFailures: 5) == 1)
        #expect(Backoff(initial: 100, maximum: 10).delay(afterFailures: 1) == 100)
    }
}

/// The sleeps last an hour: a wake or a cancel that works ends them long before, however loaded the machine,
/// and one that does not leaves the test to the suite's time limit, which fails it.
@Suite("Alarm", .mayBlock, .timeLimit(.minutes(10)))
struct AlarmTests {
    static let hour = Duration.seconds(3600)

    @Test("wake() ends a long sleep at once; a wake with nobody asleep is kept for the next sleep")
    func wake() async {
        let alarm = Alarm()
        let clock = ContinuousClock()
        let start = clock.now
        // Whether the wake comes before the sleeper sleeps or while it sleeps, it ends the sleep.
        async let sleeper: Void = alarm.sleep(for: Self.hour)
        alarm.wake()
        await sleeper
        #expect(clock.now - start < Self.hour)

        alarm.wake()
        let second = clock.now
        await alarm.sleep(for: Self.hour)
        #expect(clock.now - second < Self.hour)
    }

    @Test("Cancelling the sleeping task ends the sleep")
    func cancel() async {
        let alarm = Alarm()
        let clock = ContinuousClock()
        let start = clock.now
        let task = Task { await alarm.sleep(for: Self.hour) }
        task.cancel()
        await task.value
        #expect(clock.now - start < Self.hour)
    }

    @Test("Without a wake, the sleep lasts its duration")
    func duration() async {
        let clock = ContinuousClock()
        let start = clock.now
        await Alarm().sleep(for: .milliseconds(100))
        #expect(clock.now - start >= .milliseconds(100))
    }
}
