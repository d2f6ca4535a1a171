/// One step of `turnkeeper load`: so many calls at once, measured over the step's duration.
public struct LoadStep: Codable, Sendable, Hashable {
    public struct Percentiles: Codable, Sendable, Hashable {
        public var p50: Double
        public var p99: Double
    }

    /// Calls asked for, and calls that came up (both allocations, permissions and channels).
    public var calls: Int
    public var callsUp: Int
    /// Allocation setup, in milliseconds (both relays of a call, their permissions and channels).
    public var setupMs: Percentiles?
    /// Packets sent and lost, over every stream of every call that came up.
    public var packetsSent: Int
    public var lossPercent: Double
    /// RFC 3550 interarrival jitter per stream, at the end of the step, in milliseconds.
    public var jitterMs: Percentiles?
    /// One-way transit through both relays (the two parties share this machine's clock), in milliseconds.
    public var transitMs: Percentiles?
    public var packetsPerSecond: Double
    public var bytesPerSecond: Double
    /// Allocations that came up a second while the step's new calls were set up at once (each call two).
    public var allocationsPerSecond: Double?
    /// Packets this client did not send because the connection's send buffer was full.
    public var packetsHeld: Int
    /// Packets this client did not send because it fell so far behind its schedule (its CPU or its event loops
    /// busy) that they were of no use any more: counted here, never sent in a burst, never counted as lost.
    /// Counted over the window, as `packetsSent`.
    public var packetsLate: Int
    /// Packets that arrived more than once (counted once). One arriving 64 or more packets behind its stream's
    /// newest is counted lost, as a jitter buffer would have dropped it.
    public var duplicates: Int
    /// Allocations refused, by error code ("486", "508", …).
    public var refusals: [String: Int]
    /// Calls set up again after an answer that asks for it, by code ("437": the server still held an
    /// allocation on the local port, RFC 8656 §7.2); a retry that came up is no refusal.
    public var retries: [String: Int]
    /// Refreshes (allocation, permission, channel) that failed during the step, by error code.
    public var refreshFailures: [String: Int]
    /// Calls whose connection to the server ended mid-call, by cause.
    public var dropped: [String: Int]
    /// What the server or the connection said, the step's first time, by kind and code ("refused 401",
    /// "refresh timeout", "dropped error"); escaped and bounded.
    public var reasons: [String: String]
    /// This process's CPU over the step, in percent of one core: a result must not measure the client.
    public var clientCPUPercent: Double
    /// coturn's CPU (percent of one core) and resident memory, when its PID is known.
    public var coturnCPUPercent: Double?
    public var coturnResidentBytes: Int?
    /// True for a step cut short by Ctrl-C: measured over what ran, not judged.
    public var interrupted = false
}

public struct LoadReport: Codable, Sendable, Hashable {
    public var uri: String
    public var profile: String
    public var stepSeconds: Double
    public var steps: [LoadStep]
    /// What stopped the ramp, in words, with the coturn option that governs it; nil when every step passed.
    public var limit: String?
    public var limitCheck: String?
    /// What the run did not test, said plainly.
    public var notTested: [String]
    /// True when every call shared one username, so that user-quota counts all of them together.
    public var credentialsShared: Bool
    /// Allocations whose release went unanswered: they stay on the server until their lifetime ends.
    public var releasesUnconfirmed: Int
    /// True when Ctrl-C (or SIGTERM) ended the run before its last step.
    public var interrupted: Bool
}

/// Where a step stops counting as carried.
public struct LoadThresholds: Sendable {
    public var lossPercent = 1.0
    public var jitterMs = 30.0
    public var setupMs = 1000.0
    /// One-way transit through both relays: ITU-T G.114's 150 ms for conversation.
    public var transitMs = 150.0
    /// Packets too late to send (the client fell behind), in percent of those due in the window.
    public var latePercent = 1.0

    public init() {}
}
