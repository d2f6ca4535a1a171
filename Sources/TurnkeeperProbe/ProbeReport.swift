/// What a probe found, in a stable shape: the JSON schema in docs/probe.md is this, encoded.
public struct ProbeReport: Sendable, Codable {
    /// Schema version; bumped only for incompatible changes.
    public var schemaVersion = 1
    /// True when every step of every target passed or was skipped for no fault.
    public var passed: Bool
    /// True when every turn: or turns: target got as far as allocating relays. False when there is none,
    /// or when one stopped before: without credentials only Binding runs, and relaying is not tested.
    public var relayTested: Bool
    public var targets: [TargetReport]
    /// Advice drawn from all targets together.
    public var diagnoses: [Diagnosis]
    /// RFC 5780 behaviour of this host's NAT, when a server with two addresses allowed finding it.
    public var nat: NATBehaviour?
    /// When the credentials probed with expire (Unix seconds), when they are TURN REST credentials: a refusal
    /// after that instant, by the TURN host's clock, is an expiry, not a wrong secret.
    public var credentialExpiry: Int64?

    public init(targets: [TargetReport], diagnoses: [Diagnosis]) {
        self.targets = targets
        self.diagnoses = diagnoses
        self.passed = targets.allSatisfy(\.passed) && diagnoses.isEmpty
        let allocations = targets.compactMap { $0.steps.first { $0.step == .allocation } }
        self.relayTested = !allocations.isEmpty && allocations.allSatisfy { $0.status != .skip }
    }
}

/// One URI at one resolved address.
public struct TargetReport: Sendable, Codable {
    public var uri: String
    public var transport: String
    /// `host:port` as resolved.
    public var address: String
    public var steps: [StepReport]

    public var passed: Bool { steps.allSatisfy { $0.status != .fail } }

    public init(uri: String, transport: String, address: String, steps: [StepReport]) {
        self.uri = uri
        self.transport = transport
        self.address = address
        self.steps = steps
    }

    private enum CodingKeys: String, CodingKey {
        case uri, transport, address, steps
    }
}

public struct StepReport: Sendable, Codable {
    public enum Name: String, Sendable, Codable {
        case resolve, binding, allocation, permission, relaySendData, channel, relayChannelData, release, otherFamily
    }

    public enum Status: String, Sendable, Codable {
        case pass, fail, skip
    }

    public var step: Name
    public var status: Status
    public var milliseconds: Double
    /// One line for people.
    public var detail: String
    /// Machine-readable facts: `reflexive`, `relayed`, `lifetime`, `sent`, `received`, `rttMinMs`, ...
    public var facts: [String: String] = [:]
    /// Set when the step failed: a stable code such as `timeout`, `credentials-rejected`, `error-403`.
    public var failure: String?

    public init(
        step: Name,
        status: Status,
        milliseconds: Double,
        detail: String,
        facts: [String: String] = [:],
        failure: String? = nil
    ) {
        self.step = step
        self.status = status
        self.milliseconds = milliseconds
        self.detail = detail
        self.facts = facts
        self.failure = failure
    }
}

/// A problem named in plain words, with its fix.
public struct Diagnosis: Sendable, Codable, Hashable {
    /// Stable identifier, such as `credentials-rejected`, `udp-blocked`, `external-ip-missing`.
    public var code: String
    public var summary: String
    public var fix: String
    /// The targets (URI and address) it is about.
    public var targets: [String]
}
