import TurnkeeperCore

/// What a consumer's switch is given from outside: its clock, where it reports, the restart policy, and a hook
/// before Synapse's restart. The rotation builds it from its own environment.
package struct SwitchEnvironment: Sendable {
    /// Unix seconds.
    package var now: @Sendable () -> Int64
    /// One line per step, for the terminal or the journal. Never handed a secret.
    package var say: @Sendable (String) -> Void
    /// A restart (or command) already run for the same content is not run again after a failure (the daemon,
    /// retrying by itself); an admin's `rotate --resume` runs it on every attempt.
    package var restartsOnlyOnChange: Bool
    /// Told once Synapse's files are written, before its restart is recorded and run. What it throws ends the
    /// switch there, as a crash would (tests inject crashes this way).
    package var restartDue: @Sendable () async throws -> Void

    package init(
        now: @escaping @Sendable () -> Int64, say: @escaping @Sendable (String) -> Void,
        restartsOnlyOnChange: Bool = false, restartDue: @escaping @Sendable () async throws -> Void = {}
    ) {
        self.now = now
        self.say = say
        self.restartsOnlyOnChange = restartsOnlyOnChange
        self.restartDue = restartDue
    }

    /// For reading only: says nothing.
    package static var quiet: SwitchEnvironment { SwitchEnvironment(now: WallClock.nowSeconds, say: { _ in }) }
}

/// A restart (Synapse's) or command (another consumer's) tried for a switch, saved in turnkeeper's state so
/// that one failure is not answered with a loop of restarts.
package struct RestartRecord: Codable, Equatable, Sendable {
    /// The fingerprint of the secret the consumer was switched to.
    package var secret: String
    package var configurationDigest: String
    package var at: Int64
    /// The command exited 0.
    package var succeeded: Bool

    package init(secret: String, configurationDigest: String, at: Int64, succeeded: Bool) {
        self.secret = secret
        self.configurationDigest = configurationDigest
        self.at = at
        self.succeeded = succeeded
    }
}
