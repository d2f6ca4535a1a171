import Testing

@testable import TurnkeeperExecution

@Suite("Pause: sleeps timed on NIO's event loops")
struct PauseTests {
    @Test("A cancelled hour-long pause throws CancellationError; a pause in a cancelled task never starts")
    func cancellation() async throws {
        let sleeper = Task { try await Pause.for(.seconds(3600)) }
        sleeper.cancel()
        await #expect(throws: CancellationError.self) { try await sleeper.value }

        let late = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            try await Pause.for(.milliseconds(1))
        }
        await #expect(throws: CancellationError.self) { try await late.value }
    }

    @Test("A pause ends; zero, negative and past deadlines return at once")
    func ends() async throws {
        try await Pause.for(.milliseconds(5))
        try await Pause.for(.zero)
        try await Pause.for(.seconds(-5))
        try await Pause.until(.now - .seconds(1))
    }

    @Test("Durations beyond Int64 nanoseconds saturate instead of trapping")
    func saturation() {
        #expect(Pause.nanoseconds(.seconds(1)) == 1_000_000_000)
        #expect(Pause.nanoseconds(.seconds(Int64.max)) == .max)
        #expect(Pause.nanoseconds(.seconds(Int64.min)) == .min)
        #expect(Pause.nanoseconds(.milliseconds(-3)) == -3_000_000)
    }
}
