import Foundation

/// The probe's report for people: a line per step, then the problems and their fixes.
public struct ReportRenderer: Sendable {
    public var colour: Bool

    public init(colour: Bool) { self.colour = colour }

    public func render(_ report: ProbeReport) -> String {
        var lines: [String] = []
        for target in report.targets {
            lines.append("\(target.uri)  \(target.address) (\(target.transport))")
            for step in target.steps {
                let mark =
                    switch step.status {
                    case .pass: paint("pass", 32)
                    case .fail: paint("FAIL", 31)
                    case .skip: paint("skip", 33)
                    }
                let time = step.status == .skip ? "" : String(format: "%.1f ms", step.milliseconds)
                lines.append("  \(mark)  \(step.step.rawValue.padding(18))\(time.padding(11))\(step.detail)")
            }
        }
        let failed = report.targets.filter { !$0.passed }.count
        lines.append("")
        if failed > 0 {
            lines.append(paint("\(failed) of \(report.targets.count) target(s) failed.", 31))
        } else if report.diagnoses.isEmpty {
            lines.append(
                paint("All \(report.targets.count) target(s) passed: calls through this server work from here.", 32))
        } else {
            lines.append(paint("Every step passed from here, but calls from elsewhere will fail:", 31))
        }
        if let nat = report.nat {
            lines.append("")
            lines.append("NAT (RFC 5780): \(nat.summary)")
        }
        if !report.diagnoses.isEmpty {
            lines.append("")
            lines.append("What is wrong, and how to fix it:")
            for diagnosis in report.diagnoses {
                lines.append("  * \(diagnosis.summary)")
                lines.append("    Fix: \(diagnosis.fix)")
                lines.append("    Seen on: \(diagnosis.targets.joined(separator: ", "))")
            }
        }
        return lines.joined(separator: "\n")
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
