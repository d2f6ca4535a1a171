public import TurnkeeperRotation

/// When the rotation service acts next, from the persisted state alone: nothing is remembered in memory
/// that a restart would lose, so a rotation missed while stopped is simply due at start.
public struct RotationSchedule: Sendable {
    public struct Action: Sendable, Equatable {
        /// Unix seconds.
        public var at: Int64
        /// True: start a new rotation; false: only finish one in flight and retire what is due.
        public var rotate: Bool
    }

    public var interval: Int64
    public var backoff: Backoff

    public init(interval: Int64, backoff: Backoff) {
        self.interval = interval
        self.backoff = backoff
    }

    /// - Parameters:
    ///   - failures: attempts failed in a row since the last success.
    ///   - lastFailure: Unix seconds of the last failed attempt.
    public func next(status: RotationStatus, now: Int64, failures: Int, lastFailure: Int64?) -> Action {
        var action: Action
        if status.phase != "idle" {
            action = Action(at: now, rotate: false)
        } else {
            // Never rotated: the secret was set by hand, perhaps years ago; rotate at once.
            let rotation = status.lastRotation.map { $0 + interval } ?? now
            let retirement = status.retiring.map(\.retiresAt).min()
            if let retirement, retirement < rotation {
                action = Action(at: retirement, rotate: false)
            } else {
                action = Action(at: rotation, rotate: true)
            }
        }
        if failures > 0, let lastFailure {
            action.at = max(action.at, lastFailure + backoff.delay(afterFailures: failures))
        }
        return action
    }
}

/// Capped exponential backoff: `initial`, twice that, four times, … never more than `maximum`.
public struct Backoff: Sendable {
    public var initial: Int64
    public var maximum: Int64

    public init(initial: Int64, maximum: Int64) {
        self.initial = max(1, initial)
        self.maximum = max(self.initial, maximum)
    }

    public func delay(afterFailures failures: Int) -> Int64 {
        guard failures > 0 else { return 0 }
        var delay = initial
        for _ in 1..<min(failures, 63) where delay < maximum { delay *= 2 }
        return min(delay, maximum)
    }
}
