/// `turnkeeper load`'s table for people, and its plot.
public struct LoadRenderer: Sendable {
    public init() {}

    public func render(_ report: LoadReport) -> String {
        let seconds = report.stepSeconds
        let stepText = seconds == seconds.rounded() ? "\(Int(seconds))" : "\(seconds)"
        var lines = ["\(report.uri): \(report.profile), \(stepText) s a step"]
        let header = [
            "calls", "up", "alloc/s", "setup p50/p99 ms", "loss %", "jitter p50/p99 ms", "transit p50/p99 ms",
            "pkt/s", "client CPU %", "coturn CPU %", "refused",
        ]
        var rows = [header]
        for step in report.steps {
            func pair(_ value: LoadStep.Percentiles?) -> String { value.map { "\($0.p50)/\($0.p99)" } ?? "-" }
            var refused = step.refusals.sorted { $0.key < $1.key }.map { "\($0.value)×\($0.key)" }
            refused += step.refreshFailures.sorted { $0.key < $1.key }.map { "\($0.value)×\($0.key) on refresh" }
            refused += step.dropped.sorted { $0.key < $1.key }.map { "\($0.value)×\($0.key) dropped" }
            if step.packetsHeld > 0 { refused.append("\(step.packetsHeld) held by this client") }
            refused += step.retries.sorted { $0.key < $1.key }.map { "\($0.value)×\($0.key) retried" }
            if step.packetsLate > 0 { refused.append("\(step.packetsLate) too late to send") }
            if step.duplicates > 0 { refused.append("\(step.duplicates) duplicates") }
            if step.interrupted { refused.append("(interrupted)") }
            rows.append([
                "\(step.calls)", "\(step.callsUp)", step.allocationsPerSecond.map { "\(Int($0))" } ?? "-",
                pair(step.setupMs), "\(step.lossPercent)", pair(step.jitterMs),
                pair(step.transitMs), "\(Int(step.packetsPerSecond))", "\(step.clientCPUPercent)",
                step.coturnCPUPercent.map { "\($0)" } ?? "-", refused.isEmpty ? "-" : refused.joined(separator: " "),
            ])
        }
        let widths = header.indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
        for row in rows {
            lines.append(
                row.enumerated().map { $0.element.padding(toLength: widths[$0.offset]) }.joined(separator: "  "))
        }
        lines.append("")
        if report.interrupted {
            lines.append("Interrupted: the last step ran only in part and was not judged.")
            if let late = report.steps.last?.packetsLate, late > 0 {
                lines.append(
                    "This client was saturated before it stopped: it fell behind its own schedule, and \(late) "
                        + "packet(s) were too late to send (not counted as lost).")
            }
        } else {
            lines.append(report.limit.map { "Limit: \($0)" } ?? "No limit reached at the calls tried.")
        }
        lines.append(
            report.credentialsShared
                ? "Every call shared one username: user-quota counted them together."
                : "Each call was its own user.")
        if report.releasesUnconfirmed > 0 {
            lines.append(
                "\(report.releasesUnconfirmed) release(s) went unanswered: those allocations stay until their "
                    + "lifetime ends.")
        }
        lines.append("Not tested: \(report.notTested.joined(separator: "; ")).")
        return lines.joined(separator: "\n")
    }

    /// An SVG of loss, jitter p99 and setup p99 against calls: a knee is easier to see than to read.
    public func svg(_ report: LoadReport) -> String {
        let series: [(String, String, [Double])] = [
            ("loss %", "#c0392b", report.steps.map(\.lossPercent)),
            ("jitter p99 ms", "#2471a3", report.steps.map { $0.jitterMs?.p99 ?? 0 }),
            ("setup p99 ms", "#1e8449", report.steps.map { $0.setupMs?.p99 ?? 0 }),
        ]
        let calls = report.steps.map { Double($0.calls) }
        let width = 640.0
        let panel = 160.0
        var out = [
            #"<svg xmlns="http://www.w3.org/2000/svg" width="640" height="\#(Int(panel * 3 + 40))" "#
                + #"font-family="sans-serif" font-size="12">"#
        ]
        let maxCalls = max(calls.max() ?? 1, 1)
        for (index, (name, colour, values)) in series.enumerated() {
            let top = Double(index) * panel + 20
            let maxValue = max(values.max() ?? 1, 1)
            out.append(#"<text x="50" y="\#(Int(top))">\#(escape(name)) (max \#(maxValue))</text>"#)
            out.append(
                #"<rect x="50" y="\#(Int(top + 5))" width="\#(Int(width - 70))" height="\#(Int(panel - 40))" "#
                    + ##"fill="none" stroke="#999"/>"##)
            let points = zip(calls, values).map { call, value in
                let x = 50 + (width - 70) * call / maxCalls
                let y = top + 5 + (panel - 40) * (1 - value / maxValue)
                return "\(Int(x)),\(Int(y))"
            }
            out.append(
                "<polyline fill=\"none\" stroke=\"\(colour)\" stroke-width=\"2\" points=\"\(points.joined(separator: " "))\"/>"
            )
        }
        out.append(#"<text x="50" y="\#(Int(panel * 3 + 30))">calls (max \#(Int(maxCalls)))</text>"#)
        out.append("</svg>")
        return out.joined(separator: "\n") + "\n"
    }

    private func escape(_ text: String) -> String {
        text.replacing("&", with: "&amp;").replacing("<", with: "&lt;").replacing(">", with: "&gt;")
    }
}

extension String {
    fileprivate func padding(toLength width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}
