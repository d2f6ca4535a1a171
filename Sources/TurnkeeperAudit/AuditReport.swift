/// One thing `turnkeeper audit` found wrong, with what proves it and the exact fix.
public struct AuditFinding: Codable, Sendable, Hashable {
    public enum Severity: String, Codable, Sendable, Hashable, CaseIterable {
        /// Anyone, or any credential holder, reaches what must stay private (loopback, metadata endpoints).
        case critical
        /// A credential holder reaches private networks, or every call from outside breaks.
        case high
        /// A weaker but real exposure (multicast, benchmarking ranges, a certificate about to expire).
        case medium
        /// Disclosure that helps an attacker choose an exploit.
        case low
    }

    /// Stable name for programs and alerts: `no-auth`, `peer-loopback`, `external-ip-mismatch`, ….
    public let check: AuditCheckID
    public let severity: Severity
    /// The URI and address it was seen at.
    public let target: String
    public let problem: String
    /// What the server answered that proves it.
    public let evidence: String
    /// The coturn option and value to add (or remove).
    public let fix: String
    /// The peer address asked, for peer checks (RFC 5952 text): one check may be found at several peers.
    public var peer: String?
    /// The known coturn vulnerability this finding is, when it is one.
    public var cve: String?
    /// For a forbidden IPv4 range asked in an IPv6 form: the form ("IPv4-mapped", "NAT64 (64:ff9b::/96)").
    public var form: String?

    public init(
        check: AuditCheckID, severity: Severity, target: String, problem: String, evidence: String, fix: String,
        peer: String? = nil, cve: String? = nil, form: String? = nil
    ) {
        self.check = check
        self.severity = severity
        self.target = target
        self.problem = problem
        self.evidence = evidence
        self.fix = fix
        self.peer = peer
        self.cve = cve
        self.form = form
    }
}

/// What one check concluded at one target, finding or not: a report says what was not tested, too.
public struct AuditCheck: Codable, Sendable, Hashable {
    public enum Result: String, Codable, Sendable, Hashable {
        /// The server behaved as it should.
        case pass
        /// See the finding with this check's name.
        case finding
        /// Not tested, and why (`detail`).
        case notTested = "not-tested"
        /// The check could not conclude (no answer, an unexpected error): `detail` says what happened.
        case error
    }

    public let check: AuditCheckID
    public let result: Result
    public let detail: String
}

public struct AuditTarget: Codable, Sendable, Hashable {
    public let uri: String
    public let address: String
    public let transport: String
    public var checks: [AuditCheck]
}

/// `turnkeeper audit`'s report; `--json` prints it as it is (schema: docs/audit.md).
public struct AuditReport: Codable, Sendable, Hashable {
    public var targets: [AuditTarget]
    public var findings: [AuditFinding]
    /// Clean: no finding, and no check that could not conclude. (A check not tested is listed in
    /// ``notTested``; it does not fail the audit.)
    public var passed: Bool { findings.isEmpty && !targets.contains { $0.checks.contains { $0.result == .error } } }
    /// Checks that did not run anywhere, by name: what the report cannot vouch for.
    public var notTested: [String] {
        let all = targets.flatMap(\.checks)
        let ran = Set(all.filter { $0.result == .pass || $0.result == .finding }.map(\.check.rawValue))
        return Array(Set(all.map(\.check.rawValue)).subtracting(ran)).sorted()
    }

    public init(targets: [AuditTarget], findings: [AuditFinding]) {
        self.targets = targets
        self.findings = findings
    }

    enum CodingKeys: String, CodingKey { case targets, findings, passed, notTested }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(passed, forKey: .passed)
        try container.encode(findings, forKey: .findings)
        try container.encode(notTested, forKey: .notTested)
        try container.encode(targets, forKey: .targets)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        targets = try container.decode([AuditTarget].self, forKey: .targets)
        findings = try container.decode([AuditFinding].self, forKey: .findings)
    }
}

/// An audit check's stable name, as a type: the audit names only checks that exist; in JSON, alerts and
/// docs/audit.md, the same strings as always. (`CoturnVersion`'s advisories, in TurnkeeperCore, name theirs as
/// text; a test holds them to these.)
public struct AuditCheckID: RawRepresentable, Sendable, Hashable, Codable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    public static let certificate = Self(rawValue: "certificate")
    public static let certificateChain = Self(rawValue: "certificate-chain")
    public static let certificateExpired = Self(rawValue: "certificate-expired")
    public static let certificateExpiring = Self(rawValue: "certificate-expiring")
    public static let certificateName = Self(rawValue: "certificate-name")
    public static let coturnVersion = Self(rawValue: "coturn-version")
    public static let dataPath = Self(rawValue: "data-path")
    public static let externalAddress = Self(rawValue: "external-address")
    public static let externalIpMismatch = Self(rawValue: "external-ip-mismatch")
    public static let forbiddenPeers = Self(rawValue: "forbidden-peers")
    public static let ipv4Peers = Self(rawValue: "ipv4-peers")
    public static let ipv6Peers = Self(rawValue: "ipv6-peers")
    public static let noAuth = Self(rawValue: "no-auth")
    public static let ownListeningAddress = Self(rawValue: "own-listening-address")
    public static let ownRelayAddress = Self(rawValue: "own-relay-address")
    public static let peerBenchmarking = Self(rawValue: "peer-benchmarking")
    public static let peerLinkLocal = Self(rawValue: "peer-link-local")
    public static let peerLoopback = Self(rawValue: "peer-loopback")
    public static let peerMetadata = Self(rawValue: "peer-metadata")
    public static let peerMulticast = Self(rawValue: "peer-multicast")
    public static let peerPrivate = Self(rawValue: "peer-private")
    public static let peerSharedSpace = Self(rawValue: "peer-shared-space")
    public static let peerThisNetwork = Self(rawValue: "peer-this-network")
    public static let publicPeer = Self(rawValue: "public-peer")
    public static let quotaMissing = Self(rawValue: "quota-missing")
    public static let quotas = Self(rawValue: "quotas")
    public static let relayPortTranslated = Self(rawValue: "relay-port-translated")
    public static let resolve = Self(rawValue: "resolve")
    public static let retiredSecret = Self(rawValue: "retired-secret")
    public static let retiredSecretAccepted = Self(rawValue: "retired-secret-accepted")
    public static let softwareDisclosed = Self(rawValue: "software-disclosed")
    public static let tlsOldVersion = Self(rawValue: "tls-old-version")
    public static let tlsVersions = Self(rawValue: "tls-versions")

    /// Every check the audit can run, for programs and tests.
    public static let all: [AuditCheckID] = [
        .certificate,
        .certificateChain,
        .certificateExpired,
        .certificateExpiring,
        .certificateName,
        .coturnVersion,
        .dataPath,
        .externalAddress,
        .externalIpMismatch,
        .forbiddenPeers,
        .ipv4Peers,
        .ipv6Peers,
        .noAuth,
        .ownListeningAddress,
        .ownRelayAddress,
        .peerBenchmarking,
        .peerLinkLocal,
        .peerLoopback,
        .peerMetadata,
        .peerMulticast,
        .peerPrivate,
        .peerSharedSpace,
        .peerThisNetwork,
        .publicPeer,
        .quotaMissing,
        .quotas,
        .relayPortTranslated,
        .resolve,
        .retiredSecret,
        .retiredSecretAccepted,
        .softwareDisclosed,
        .tlsOldVersion,
        .tlsVersions,
    ]
}
