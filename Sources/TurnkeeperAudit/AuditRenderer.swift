/// `turnkeeper audit`'s report for people: each target's checks, then the findings, most severe first, each
/// with its evidence and fix, then what was not tested. Server text was escaped when it was recorded.
public struct AuditRenderer: Sendable {
    public init() {}

    public func render(_ report: AuditReport) -> String {
        var lines: [String] = []
        for target in report.targets {
            lines.append("\(target.uri) (\(target.address), \(target.transport))")
            for check in target.checks {
                let result =
                    switch check.result {
                    case .pass: "pass      "
                    case .finding: "FINDING   "
                    case .notTested: "not tested"
                    case .error: "ERROR     "
                    }
                lines.append("  \(result) \(check.check.rawValue.padding(to: 20)) \(check.detail)")
            }
            lines.append("")
        }
        let errors = report.targets.flatMap(\.checks).filter { $0.result == .error }
        if report.findings.isEmpty && errors.isEmpty {
            lines.append("No findings: the server refused everything it should, as far as was tested.")
        } else if report.findings.isEmpty {
            lines.append("No findings, but not every check could conclude (ERROR above).")
        } else {
            // The same finding at several targets (UDP and TCP of one server) is said once, with each target.
            var groups: [(finding: AuditFinding, targets: [String])] = []
            for finding in report.findings {
                if let index = groups.firstIndex(where: {
                    $0.finding.check == finding.check && $0.finding.problem == finding.problem
                        && $0.finding.evidence == finding.evidence && $0.finding.fix == finding.fix
                }) {
                    groups[index].targets.append(finding.target)
                } else {
                    groups.append((finding, [finding.target]))
                }
            }
            lines.append("\(report.findings.count) finding(s), most severe first:")
            // Forbidden IPv4 ranges granted in one IPv6 form share one fix: said once, with every peer.
            var said = Set<Int>()
            for (index, (finding, targets)) in groups.enumerated() where !said.contains(index) {
                let same = groups.indices.filter { other in
                    finding.form != nil && groups[other].finding.form == finding.form
                        && groups[other].finding.fix == finding.fix && groups[other].targets == targets
                }
                if same.count > 1 {
                    said.formUnion(same)
                    let members = same.map { groups[$0].finding }
                    lines.append("")
                    lines.append(
                        "[\(finding.severity.rawValue)] \(members.count) forbidden IPv4 ranges are relayed when "
                            + "written \(finding.form ?? ""): anyone holding a credential can reach them through the "
                            + "server, from outside."
                            + (finding.cve.map {
                                " This is \($0): coturn before 4.9.0 lets IPv4-mapped peers past its IPv4 checks."
                            } ?? ""))
                    lines.append("  Granted (nothing was sent there):")
                    for member in members {
                        let peer = member.peer ?? "?"
                        lines.append("    \(peer.padding(to: 22)) \(member.check) [\(member.severity.rawValue)]")
                    }
                    lines.append("  Fix: \(finding.fix)")
                    lines.append("  Seen at: \(targets.joined(separator: ", "))")
                    continue
                }
                lines.append("")
                lines.append("[\(finding.severity.rawValue)] \(finding.check): \(finding.problem)")
                lines.append("  Evidence: \(finding.evidence).")
                lines.append("  Fix: \(finding.fix)")
                lines.append("  Seen at: \(targets.joined(separator: ", "))")
            }
        }
        if !errors.isEmpty {
            lines.append("")
            lines.append("\(errors.count) check(s) could not conclude (ERROR above): the server did not pass them.")
        }
        if !report.notTested.isEmpty {
            lines.append("")
            lines.append("Not tested: \(report.notTested.joined(separator: ", ")).")
        }
        return lines.joined(separator: "\n")
    }
}

extension String {
    fileprivate func padding(to width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}
