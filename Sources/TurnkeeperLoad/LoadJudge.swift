/// What stopped a ramp: a check's name and, in words, the coturn option that governs it.
struct Limit: Sendable, Hashable {
    var check: String
    var words: String
}

/// Which limit a step hit, in the order that explains most: a refusal explains the loss that follows it, a
/// dropped call its lost packets, a saturated client everything timed.
enum LoadJudge {
    /// The client counts as saturated at this share of its event loops' cores.
    static let saturatedShare = 0.9

    static func judge(_ step: LoadStep, thresholds: LoadThresholds, sharedCredentials: Bool, cores: Int) -> Limit? {
        let due = step.packetsSent + step.packetsLate
        let latePercent = due == 0 ? 0 : Double(step.packetsLate) / Double(due) * 100
        let tooLate = step.packetsLate > 0 && latePercent > thresholds.latePercent
        let at = "At \(step.calls) calls"
        func codes(_ counts: [String: Int], _ kind: String) -> (total: Int, text: String)? {
            guard !counts.isEmpty else { return nil }
            let sorted = counts.sorted { ($0.value, $1.key) > ($1.value, $0.key) }
            let text = sorted.map { count in
                let reason = step.reasons["\(kind) \(count.key)"].map { ": \($0)" } ?? ""
                return "\(count.value)×\(count.key)\(reason)"
            }
            return (counts.values.reduce(0, +), text.joined(separator: "; "))
        }
        let other = codes(step.refusals.filter { !["486", "508", "timeout"].contains($0.key) }, "refused")
        let quotas =
            sharedCredentials
            ? "user-quota (every call shares one username), total-quota,"
            : "total-quota, a user-quota under 2 (each call is its own user with two allocations),"
        let clientBusy = step.clientCPUPercent >= saturatedShare * 100 * Double(max(1, cores)) || tooLate
        let rules: [(check: String, words: String?)] = [
            (
                "allocation-quota",
                step.refusals["486"].map {
                    "\(at) coturn refused \($0) allocation(s) with 486 (allocation quota reached): \(quotas) or "
                        + "bps-capacity (bandwidth already allotted to sessions at max-bps each) governs it. Raise "
                        + "them in turnserver.conf if this host should carry more."
                }
            ),
            (
                "relay-capacity",
                step.refusals["508"].map {
                    "\(at) coturn refused \($0) allocation(s) with 508 (insufficient capacity): the relay port "
                        + "range (min-port..max-port, two ports a call) or total-quota is exhausted."
                }
            ),
            (
                "dropped",
                codes(step.dropped, "dropped").map {
                    "\(at) \($0.total) call(s) lost their connection to coturn mid-call (\($0.text))."
                }
            ),
            (
                "refresh",
                codes(step.refreshFailures, "refresh").map {
                    "\(at) \($0.total) refresh(es) of an allocation, permission or channel failed (\($0.text)): "
                        + "calls would drop mid-call."
                }
            ),
            (
                "client-saturated",
                clientBusy
                    ? "\(at) this client was saturated: "
                        + (tooLate
                            ? "it fell behind its own schedule, and \(step.packetsLate) packet(s) were too late to "
                                + "send (\((latePercent * 10).rounded() / 10)% of those due, over --max-late "
                                + "\(thresholds.latePercent)%; not counted as lost); it used "
                                + "\(step.clientCPUPercent)% CPU of \(cores) core(s)"
                            : "it used \(step.clientCPUPercent)% CPU, the most its \(cores) core(s) give")
                        + ". It, not coturn, is the limit. Run the load from another host (or several), or fewer calls."
                    : nil
            ),
            (
                "loss",
                step.lossPercent > thresholds.lossPercent
                    ? "\(at) \(step.lossPercent)% of packets were lost (threshold \(thresholds.lossPercent)%): "
                        + "if coturn sets max-bps (per session) or bps-capacity, they cap the bandwidth; otherwise "
                        + "the host's CPU or network is the limit (see coturn's CPU)." : nil
            ),
            (
                "client-backlog",
                step.packetsHeld > 0
                    ? "\(at) this client held back \(step.packetsHeld) packet(s) because its sockets' send buffers "
                        + "were full: over TCP or TLS, coturn reading too slowly or the path to it; over UDP, this "
                        + "host's own socket buffers (net.core.wmem_default) or CPU." : nil
            ),
            (
                "jitter",
                step.jitterMs.flatMap { $0.p99 > thresholds.jitterMs ? $0.p99 : nil }.map {
                    "\(at) jitter p99 reached \($0) ms (threshold \(thresholds.jitterMs) ms): the relay falls "
                        + "behind; coturn's CPU shows whether it is the limit."
                }
            ),
            (
                "transit",
                step.transitMs.flatMap { $0.p99 > thresholds.transitMs ? $0.p99 : nil }.map {
                    "\(at) one-way transit p99 reached \($0) ms (threshold \(thresholds.transitMs) ms, ITU-T "
                        + "G.114's limit for conversation): packets queue in the relay or in this client; the "
                        + "CPU columns say which."
                }
            ),
            (
                "setup-timeout",
                step.refusals["timeout"].map {
                    "\(at) \($0) call(s) did not come up within the setup timeout: the server (or this client: "
                        + "see the CPU columns) no longer keeps up."
                }
            ),
            ("refused", other.map { "\(at) \($0.total) call(s) did not come up (\($0.text))." }),
            (
                "setup",
                step.setupMs.flatMap { $0.p99 > thresholds.setupMs ? $0.p99 : nil }.map {
                    "\(at) allocation setup p99 reached \($0) ms (threshold \(thresholds.setupMs) ms)."
                }
            ),
        ]
        guard let first = rules.first(where: { $0.words != nil }), var words = first.words else { return nil }
        if clientBusy && first.check != "client-saturated" {
            words +=
                " This client was saturated too (\(step.clientCPUPercent)% CPU"
                + (step.packetsLate > 0 ? ", \(step.packetsLate) packet(s) too late to send" : "")
                + "): it may be the cause; load from another host to tell."
        } else if first.check != "client-saturated", let coturn = step.coturnCPUPercent,
            step.clientCPUPercent + coturn >= saturatedShare * 100 * Double(max(1, cores))
        {
            // Client and coturn on one machine, together filling it: the knee is this machine's, not coturn's.
            words +=
                " This machine's CPU was full (this client \(step.clientCPUPercent)% + coturn \(coturn)% of "
                + "\(cores) core(s)): to measure coturn alone, load it from another host."
        }
        return Limit(check: first.check, words: words)
    }
}
