import FoundationEssentials
import TurnkeeperCore
import TurnkeeperSTUN

/// The probe's report for people: a line per step, then the problems and their fixes. Server text reaches
/// the report already escaped; every line is escaped once more here, so nothing can end or forge a line.
public struct ReportRenderer: Sendable {
    /// "12.3 ms", rounded to a tenth.
    static func milliseconds(_ value: Double) -> String {
        guard value.isFinite, value >= 0, value < 1e9 else { return "? ms" }
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10) ms"
    }

    public var colour: Bool

    public init(colour: Bool) { self.colour = colour }

    public func render(_ report: ProbeReport) -> String {
        var lines: [String] = []
        func safe(_ text: String) -> String { ServerText.escaped(text, limit: nil) }
        for target in report.targets {
            lines.append("\(safe(target.uri))  \(safe(target.address)) (\(target.transport))")
            for step in target.steps {
                let mark =
                    switch step.status {
                    case .pass: paint("pass", 32)
                    case .fail: paint("FAIL", 31)
                    case .skip: paint("skip", 33)
                    }
                let time = step.status == .skip ? "" : Self.milliseconds(step.milliseconds)
                lines.append("  \(mark)  \(step.step.rawValue.padding(18))\(time.padding(11))\(safe(step.detail))")
            }
        }
        let failed = report.targets.filter { !$0.passed }.count
        lines.append("")
        if failed > 0 {
            lines.append(paint("\(failed) of \(report.targets.count) target(s) failed.", 31))
        } else if !report.diagnoses.isEmpty {
            lines.append(paint("Every step passed from here, but calls from elsewhere will fail:", 31))
        } else if report.relayTested {
            lines.append(
                paint("All \(report.targets.count) target(s) passed: calls through this server work from here.", 32))
        } else {
            lines += untested(report).map { paint($0, 33) }
        }
        let missing = Set(
            report.targets.flatMap(\.steps).filter { $0.step == .otherFamily && $0.facts["errorCode"] == "440" }
                .compactMap { $0.facts["family"] })
        for family in missing.sorted() {
            lines.append("No \(family) relay (440): peers with only \(family) addresses cannot be relayed.")
        }
        if let nat = report.nat {
            lines.append("")
            lines.append("NAT (RFC 5780): \(nat.summary)")
        }
        if !report.diagnoses.isEmpty {
            lines.append("")
            lines.append("What is wrong, and how to fix it:")
            for diagnosis in report.diagnoses {
                lines.append("  * \(safe(diagnosis.summary))")
                lines.append("    Fix: \(safe(diagnosis.fix))")
                lines.append("    Seen on: \(safe(diagnosis.targets.joined(separator: ", ")))")
            }
        }
        return lines.joined(separator: "\n")
    }

    /// Every step passed, but no relay was allocated: say what was tested and what was not.
    private func untested(_ report: ProbeReport) -> [String] {
        let count = report.targets.count
        let turn = report.targets.contains { $0.steps.contains { $0.step == .allocation } }
        guard turn else {
            return [
                "Binding passed on all \(count) target(s): the server answers STUN from here.",
                "Relaying was not tested: stun: URIs test only Binding. Probe the server's turn: URIs with "
                    + "credentials to test calls.",
            ]
        }
        return [
            "Binding passed on all \(count) target(s), but relaying was NOT tested: without credentials no relay "
                + "was allocated, so this says nothing about whether calls work.",
            "To test relaying, give credentials: --secret-file, --synapse-config, or --homeserver with "
                + "--access-token-file.",
        ]
    }

    private func paint(_ text: String, _ code: Int) -> String {
        colour ? "\u{1B}[\(code)m\(text)\u{1B}[0m" : text
    }
}

extension String {
    fileprivate func padding(_ width: Int) -> String {
        count >= width ? self + " " : self + String(repeating: " ", count: width - count)
    }
}
