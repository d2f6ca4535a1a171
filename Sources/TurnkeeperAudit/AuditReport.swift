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
    public let check: String
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
        check: String, severity: Severity, target: String, problem: String, evidence: String, fix: String,
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

    public let check: String
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
        let ran = Set(all.filter { $0.result == .pass || $0.result == .finding }.map(\.check))
        return Array(Set(all.map(\.check)).subtracting(ran)).sorted()
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
