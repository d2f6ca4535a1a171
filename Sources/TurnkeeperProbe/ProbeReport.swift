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
    public var failure: FailureCode?

    public init(
        step: Name,
        status: Status,
        milliseconds: Double,
        detail: String,
        facts: [String: String] = [:],
        failure: FailureCode? = nil
    ) {
        self.step = step
        self.status = status
        self.milliseconds = milliseconds
        self.detail = detail
        self.facts = facts
        self.failure = failure
    }
}

/// Why a step failed, as a stable code: a type, so that the probe and the diagnosis can only name codes that
/// exist; in JSON, the same strings as always (`timeout`, `credentials-rejected`, `error-403`).
public struct FailureCode: RawRepresentable, Sendable, Hashable, Codable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    public static let resolve = Self(rawValue: "resolve")
    public static let timeout = Self(rawValue: "timeout")
    public static let refused = Self(rawValue: "refused")
    public static let connectionFailed = Self(rawValue: "connection-failed")
    /// Over UDP, an ICMP error other than port unreachable (a firewall's reject).
    public static let rejected = Self(rawValue: "rejected")
    public static let tls = Self(rawValue: "tls")
    public static let closed = Self(rawValue: "closed")
    public static let credentialsRejected = Self(rawValue: "credentials-rejected")
    public static let credentialsRequired = Self(rawValue: "credentials-required")
    public static let malformedResponse = Self(rawValue: "malformed-response")
    public static let responseIntegrityMissing = Self(rawValue: "response-integrity-missing")
    public static let responseIntegrityInvalid = Self(rawValue: "response-integrity-invalid")
    public static let protocolViolation = Self(rawValue: "protocol-violation")
    public static let relaySilent = Self(rawValue: "relay-silent")
    public static let relayLoss = Self(rawValue: "relay-loss")
    /// Anything not of the TURN client's own kinds.
    public static let other = Self(rawValue: "error")

    /// An error response the server sent: `error-NNN`.
    public static func errorResponse(_ code: Int) -> Self { Self(rawValue: "error-\(code)") }
}

/// A problem named in plain words, with its fix.
public struct Diagnosis: Sendable, Codable, Hashable {
    /// Stable identifier, such as `credentials-rejected`, `udp-blocked`, `external-ip-missing`.
    public var code: DiagnosisCode
    public var summary: String
    public var fix: String
    /// The targets (URI and address) it is about.
    public var targets: [String]
}

/// What a diagnosis is about, as a stable code: a type, so that the diagnostician names only codes that exist; in
/// JSON and on the call test page, the same strings as always.
public struct DiagnosisCode: RawRepresentable, Sendable, Hashable, Codable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    public static let allocationQuota = Self(rawValue: "allocation-quota")
    public static let brokenServer = Self(rawValue: "broken-server")
    public static let credentialsExpired = Self(rawValue: "credentials-expired")
    public static let credentialsExpiryTooLate = Self(rawValue: "credentials-expiry-too-late")
    public static let credentialsRejected = Self(rawValue: "credentials-rejected")
    public static let credentialsRejectedStoreDown = Self(rawValue: "credentials-rejected-store-down")
    public static let credentialsRequired = Self(rawValue: "credentials-required")
    public static let externalIPMissing = Self(rawValue: "external-ip-missing")
    public static let notListening = Self(rawValue: "not-listening")
    public static let peerDenied = Self(rawValue: "peer-denied")
    public static let peerFamilyMismatch = Self(rawValue: "peer-family-mismatch")
    public static let relayCapacity = Self(rawValue: "relay-capacity")
    public static let relayFamilyUnsupported = Self(rawValue: "relay-family-unsupported")
    public static let relayLoss = Self(rawValue: "relay-loss")
    public static let relayPortsBlocked = Self(rawValue: "relay-ports-blocked")
    public static let responseIntegrityMissing = Self(rawValue: "response-integrity-missing")
    public static let responseIntegrityInvalid = Self(rawValue: "response-integrity-invalid")
    public static let tlsExpired = Self(rawValue: "tls-expired")
    public static let tlsFailed = Self(rawValue: "tls-failed")
    public static let tlsNameMismatch = Self(rawValue: "tls-name-mismatch")
    public static let tlsUntrusted = Self(rawValue: "tls-untrusted")
    public static let unreachable = Self(rawValue: "unreachable")
    public static let usernameRefused = Self(rawValue: "username-refused")
    /// A transport that gets no answer while another one to the same server does: `udp-blocked`, `tcp-blocked`,
    /// `tls-blocked`.
    public static func blocked(_ transport: String) -> Self { Self(rawValue: "\(transport)-blocked") }
}
