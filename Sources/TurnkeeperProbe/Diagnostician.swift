import NIOCore
import TurnkeeperCore
import TurnkeeperSTUN
import TurnkeeperTURNClient

/// Turns step results into plain-words diagnoses with fixes. Pure: no I/O, no clock but the one given.
public struct Diagnostician: Sendable {
    /// Facts from outside the probe that change what a failure means.
    public struct Context: Sendable {
        /// The credential's expiry (Unix seconds), when its username carries one.
        public var credentialExpiry: Int64?
        /// What a TURN server would refuse in the credential's username, in words (RESTUsername.problem);
        /// nil when nothing is known to be wrong with it.
        public var usernameProblem: String?
        public var nowSeconds: Int64
        /// Certificates fetched after TLS failures, by target address.
        public var certificates: [String: CertificateFacts]
        /// Why coturn's user database did not answer turnkeeper just now, when it did not: coturn then refuses
        /// every login, and a refusal says nothing about the secret.
        public var storeProblem: String?

        public init(
            credentialExpiry: Int64? = nil, usernameProblem: String? = nil, nowSeconds: Int64,
            certificates: [String: CertificateFacts] = [:], storeProblem: String? = nil
        ) {
            self.credentialExpiry = credentialExpiry
            self.usernameProblem = usernameProblem
            self.nowSeconds = nowSeconds
            self.certificates = certificates
            self.storeProblem = storeProblem
        }
    }

    public struct CertificateFacts: Sendable {
        public var names: [String]
        public var notValidAfter: Int64
        public var notValidAfterText: String

        public init(names: [String], notValidAfter: Int64, notValidAfterText: String) {
            self.names = names
            self.notValidAfter = notValidAfter
            self.notValidAfterText = notValidAfterText
        }
    }

    public let context: Context

    public init(context: Context) { self.context = context }

    /// The same failure gets the same code whatever the server. A server refuses credentials with 401
    /// (coturn) or 400 (pion); either way it answers the signed Allocate without signing its answer, since
    /// it could not verify ours. So an unsigned 400 to the allocation is `credentials-rejected`, as an
    /// unsigned 401 is; the number stays in `facts.errorCode`. A signed 400 is not: that server verified
    /// the credentials and refused something else.
    public func classify(_ targets: [TargetReport]) -> [TargetReport] {
        targets.map { target in
            var target = target
            for index in target.steps.indices {
                let step = target.steps[index]
                if step.status == .fail, step.step == .allocation, step.failure == .errorResponse(400),
                    step.facts["answerIntegrity"] == "missing"
                {
                    target.steps[index].failure = .credentialsRejected
                }
            }
            return target
        }
    }

    /// Diagnoses of `targets`, classified first (see ``classify(_:)``).
    public func diagnose(_ targets: [TargetReport]) -> [Diagnosis] {
        let targets = classify(targets)
        var found: [Diagnosis] = []
        func add(_ code: DiagnosisCode, _ summary: String, _ fix: String, _ target: TargetReport) {
            let name = "\(target.uri) (\(target.address))"
            if let index = found.firstIndex(where: { $0.code == code && $0.summary == summary }) {
                if !found[index].targets.contains(name) { found[index].targets.append(name) }
            } else {
                found.append(Diagnosis(code: code, summary: summary, fix: fix, targets: [name]))
            }
        }

        for target in targets {
            for step in target.steps where step.status == .fail {
                diagnoseFailure(step, target, targets, add)
            }
            diagnoseRelayedAddress(target, add)
        }
        return found
    }

    private func diagnoseFailure(
        _ step: StepReport,
        _ target: TargetReport,
        _ all: [TargetReport],
        _ add: (DiagnosisCode, String, String, TargetReport) -> Void
    ) {
        let port = target.address.split(separator: ":").last.map(String.init) ?? "?"
        switch step.failure {
        case .credentialsRejected:
            diagnoseRefusedCredentials(step, target, add)
        case .credentialsRequired:
            add(
                .credentialsRequired,
                "The TURN server requires credentials and the probe had none.",
                "Give --secret-file with the shared secret (turnkeeper mints credentials), or --username and "
                    + "--password-file.",
                target
            )
        case .errorResponse(403), .errorResponse(440), .errorResponse(443), .errorResponse(486),
            .errorResponse(508):
            diagnoseErrorResponse(step, target, add)
        case .timeout where step.step == .binding:
            diagnoseSilence(target, all, port: port, add)
        case .rejected:
            // An ICMP rejection: what a silent drop would be, said as a rejection.
            diagnoseSilence(target, all, port: port, rejected: true, add)
        case .refused where target.transport == "udp":
            add(
                .notListening,
                "Nothing listens on UDP \(target.address), or a firewall rejects it there: the host answered with "
                    + "ICMP \"port unreachable\" (a firewall that drops packets sends nothing back).",
                "Start coturn, or make it listen there (listening-port, and listening-ip if it binds only some "
                    + "addresses). Check `ss -lunp | grep \(port)` on the TURN host; if coturn listens, look for a "
                    + "reject rule for UDP port \(port) (`nft list ruleset`, iptables -j REJECT, ufw reject).",
                target
            )
        case .refused:
            add(
                .notListening,
                "Nothing accepts \(target.transport.uppercased()) connections on \(target.address).",
                "Start coturn, or make it listen there: listening-port for turn:, tls-listening-port with cert= and "
                    + "pkey= for turns:. Check `ss -ltnp | grep \(port)` on the TURN host.",
                target
            )
        case .tls:
            diagnoseTLS(step, target, add)
        case .relaySilent:
            add(
                .relayPortsBlocked,
                "Allocations work but nothing comes back through the relays: media cannot flow.",
                "A firewall blocks the relay port range. Open min-port..max-port (default 49152-65535) for UDP on the "
                    + "TURN host and in any cloud security group.",
                target
            )
        case .relayLoss:
            add(
                .relayLoss,
                "Packets through the relays are being lost (\(step.facts["lossPercent"] ?? "?")%).",
                "Check the TURN host's network and load; calls will stutter.",
                target
            )
        case .responseIntegrityMissing, .responseIntegrityInvalid:
            let what =
                step.failure == .responseIntegrityMissing
                ? "it carries no MESSAGE-INTEGRITY" : "its MESSAGE-INTEGRITY does not verify with the credentials"
            add(
                step.failure == .responseIntegrityMissing ? .responseIntegrityMissing : .responseIntegrityInvalid,
                "An answer of the server could not be authenticated: \(what), although the request was signed "
                    + "(the FAIL lines say which). A TURN server signs its answers to signed requests, so this one "
                    + "was forged by something on the path, or the server is broken: nothing it said can be "
                    + "trusted.",
                "Check that the URI points at your TURN server and that nothing between here and it (a proxy, "
                    + "a captive portal, a middlebox on port \(port)) answers in its place. Probe again from "
                    + "another network to compare.",
                target
            )
        case .protocolViolation, .malformedResponse:
            add(
                .brokenServer,
                "The server at \(target.address) does not speak STUN/TURN correctly: \(step.detail).",
                "Check that the URI points at coturn (and not at a web server or another service on that port).",
                target
            )
        default:
            break
        }
    }

    /// Credentials refused after they were sent: which of the causes the context can tell apart.
    private func diagnoseRefusedCredentials(
        _ step: StepReport, _ target: TargetReport, _ add: (DiagnosisCode, String, String, TargetReport) -> Void
    ) {
        if let problem = context.usernameProblem {
            add(
                .usernameRefused,
                "The TURN server refused the credentials (\(step.facts["errorCode"] ?? "401") after they were "
                    + "sent): their username \(problem).",
                "Synapse's usernames are <expiry>:<user ID>. Use credentials for a user ID coturn takes; "
                    + "`turnkeeper credentials --user` refuses the ones it would not.",
                target
            )
        } else if let expiry = context.credentialExpiry, expiry > Int64(Int32.max) {
            add(
                .credentialsExpiryTooLate,
                "The TURN server refused the credentials: they expire after 2038-01-19 03:14:07 UTC, which "
                    + "coturn reads as a negative (long past) timestamp.",
                "Shorten turn_user_lifetime in Synapse's config (the default 1h is right for calls) and restart "
                    + "Synapse.",
                target
            )
        } else if let expiry = context.credentialExpiry, expiry < context.nowSeconds {
            add(
                .credentialsExpired,
                "The TURN server refused the credentials because they expired \(context.nowSeconds - expiry) s ago.",
                "Fetch fresh credentials. If they were just minted, the clocks of the Synapse host and the TURN host "
                    + "disagree: enable NTP on both (`timedatectl set-ntp true`) and compare `date -u`.",
                target
            )
        } else if let storeProblem = context.storeProblem {
            add(
                .credentialsRejectedStoreDown,
                "The TURN server refused the credentials while its user database does not answer turnkeeper "
                    + "either (\(storeProblem)): coturn refuses every login then, whatever the secret.",
                "Bring the database back, or fail over to an in-sync replica. turnkeeper checks it every few "
                    + "seconds and puts back any secret it lost as soon as it answers.",
                target
            )
        } else {
            add(
                .credentialsRejected,
                // No number here: coturn's 401 and pion's 400 are one problem, listed once; facts.errorCode
                // of the step keeps the number.
                "The TURN server refused the credentials after they were sent. Calls will ring and never connect.",
                "The secret Synapse signs with (turn_shared_secret) differs from coturn's static-auth-secret, or "
                    + "coturn's realm is unset, or lt-cred-mech is mixed with use-auth-secret. Compare "
                    + "`turnkeeper secret fingerprint` of both secrets, set realm= in turnserver.conf, remove "
                    + "lt-cred-mech, and restart coturn.",
                target
            )
        }
    }

    /// The error responses that name a problem of the server's configuration.
    private func diagnoseErrorResponse(
        _ step: StepReport, _ target: TargetReport, _ add: (DiagnosisCode, String, String, TargetReport) -> Void
    ) {
        switch step.failure {
        case .errorResponse(403):
            add(
                .peerDenied,
                "The TURN server forbade relaying to the other party's address (403 Forbidden). "
                    + "Relay-to-relay calls, the ones behind symmetric NAT, will fail.",
                Self.peerDeniedFix(relayed: target.steps.first { $0.step == .allocation }?.facts["relayed"]),
                target
            )
        case .errorResponse(440):
            // Only the call's own allocation fails on it: the other family's 440 is a skip, and an IPv6 URI's
            // 440 falls back to IPv4 first.
            add(
                .relayFamilyUnsupported,
                "The TURN server has no relay of the requested family (440 Address Family not Supported).",
                "Give coturn a relay address of that family (relay-ip=, and external-ip= for it behind NAT) and "
                    + "restart it; or use a URI whose clients take the family it has.",
                target
            )
        case .errorResponse(443):
            add(
                .peerFamilyMismatch,
                "The TURN server refused a peer of the other address family than the relay (443 Peer Address "
                    + "Family Mismatch): a relay reaches peers of its own family only.",
                "Give coturn relays of both families (a relay-ip, and behind NAT an external-ip, for IPv4 and for "
                    + "IPv6) so that each client can take a relay in its peer's family; coturn gives one of the "
                    + "other family to a client that asks (REQUESTED-ADDRESS-FAMILY), over either listener.",
                target
            )
        case .errorResponse(486):
            add(
                .allocationQuota,
                "The TURN server refused the allocation: the user's quota is reached (486).",
                "Raise user-quota in turnserver.conf, or find what holds allocations open.",
                target
            )
        case .errorResponse(508):
            add(
                .relayCapacity,
                "The TURN server has no relay capacity left (508): relay ports or total-quota exhausted.",
                "Widen min-port..max-port or raise total-quota in turnserver.conf.",
                target
            )
        default:
            break
        }
    }

    /// No answer to the Binding: filtered on this transport when another one works, else unreachable.
    /// No answer (`rejected`: an ICMP error other than port unreachable, which a firewall's reject also sends).
    private func diagnoseSilence(
        _ target: TargetReport, _ all: [TargetReport], port: String, rejected: Bool = false,
        _ add: (DiagnosisCode, String, String, TargetReport) -> Void
    ) {
        let silence =
            rejected
            ? "is rejected by the network (an ICMP error: a firewall's host- or admin-prohibited, or an unknown host)"
            : "gets no answer"
        // Another transport to the same server answering means this one is filtered, not down.
        let otherWorks = all.contains { other in
            other.transport != target.transport
                && other.steps.contains { $0.step == .binding && $0.status == .pass }
        }
        if otherWorks {
            add(
                .blocked(target.transport),
                "\(target.transport.uppercased()) to port \(port) \(silence) while another transport works.",
                "A firewall drops \(target.transport.uppercased()) on port \(port): open it on the TURN host "
                    + "(`nft add rule inet filter input \(target.transport == "udp" ? "udp" : "tcp") dport \(port) accept`) "
                    + "and in any cloud security group, or check that coturn listens on it.",
                target
            )
        } else {
            add(
                .unreachable,
                rejected
                    ? "\(target.transport.uppercased()) to \(target.address) \(silence)."
                    : "\(target.address) does not answer over \(target.transport.uppercased()).",
                "Check that coturn is running and listening on port \(port) (listening-port, tls-listening-port), "
                    + "and that no firewall drops the traffic.",
                target
            )
        }
    }

    private func diagnoseTLS(
        _ step: StepReport, _ target: TargetReport, _ add: (DiagnosisCode, String, String, TargetReport) -> Void
    ) {
        let host = (try? TURNURI(target.uri))?.host ?? Self.host(of: target.address)
        guard let certificate = context.certificates[target.address] else {
            add(
                .tlsFailed,
                "The TLS handshake with \(target.address) failed: \(step.detail).",
                "Check the certificate (cert=, pkey=) and that coturn allows TLS 1.2 or later (no-tlsv1, no-tlsv1_1 "
                    + "are fine before 4.7; never no-tlsv1_2, and on 4.7+ never --no-tlsv1 on the command line, which "
                    + "coturn takes for --no-tlsv1_2).",
                target
            )
            return
        }
        // The names are the server's text: escaped, and no more than ten of them.
        var shown = certificate.names.prefix(10).map { ServerText.escaped($0) }
        if certificate.names.count > 10 { shown.append("and \(certificate.names.count - 10) more") }
        let names = shown.isEmpty ? "no subject alternative names" : shown.joined(separator: ", ")
        if certificate.notValidAfter < context.nowSeconds {
            add(
                .tlsExpired,
                "The TURN server's certificate expired on \(certificate.notValidAfterText) (names: \(names)).",
                "Renew it (certbot renew) and send coturn SIGUSR2 to reload certificates.",
                target
            )
        } else if !certificate.names.contains(where: { Self.matches(host: host, name: $0) }) {
            add(
                .tlsNameMismatch,
                "The TURN server's certificate is for \(names), not \(host).",
                "Get a certificate that names \(host), or use a turns: URI with a name the certificate covers.",
                target
            )
        } else {
            add(
                .tlsUntrusted,
                "The TURN server's certificate for \(names) (valid until \(certificate.notValidAfterText)) is not "
                    + "signed by a trusted authority, or its chain is incomplete.",
                "Serve the full chain (cert= should be fullchain.pem), or give --ca-file to trust a private CA.",
                target
            )
        }
    }

    package static func matches(host: String, name: String) -> Bool {
        let host = host.lowercased()
        let name = name.lowercased()
        if name.hasPrefix("*."), let dot = host.firstIndex(of: ".") { return host[dot...] == name.dropFirst() }
        return host == name
    }

    private func diagnoseRelayedAddress(
        _ target: TargetReport, _ add: (DiagnosisCode, String, String, TargetReport) -> Void
    ) {
        guard let step = target.steps.first(where: { $0.step == .allocation && $0.status == .pass }),
            let relayed = step.facts["relayed"], step.facts["relayedPrivate"] == "true",
            step.facts["serverPrivate"] == "false"
        else { return }
        add(
            .externalIPMissing,
            "coturn hands out a private relayed address (\(relayed)) while it is reached at a public one "
                + "(\(target.address)): it sits behind NAT and peers cannot reach its relays.",
            "Add external-ip=\(Self.host(of: target.address))/\(Self.host(of: relayed)) to turnserver.conf and restart "
                + "coturn.",
            target
        )
    }

    /// An allow line fixes a deny list that covers the relays, except where coturn refuses before reading it:
    /// loopback without allow-loopback-peers, and (from 4.13.1) link-local, unique-local and site-local peers.
    static func peerDeniedFix(relayed: String?) -> String {
        let relay = relayed.flatMap { try? SocketAddress(hostAndPort: $0) }.flatMap { try? TransportAddress($0) }
        if let relay, relay.isLoopback {
            return "The relays are on loopback (\(relay.host)): coturn refuses loopback peers before any "
                + "allowed-peer-ip unless allow-loopback-peers is set, which must never be on a server others use. "
                + "Probe the TURN server's public address (relay-ip/listening-ip on it) instead."
        }
        // fe80::/10 and fec0::/10 (fe80:: to feff::), and fc00::/7.
        if let relay, relay.family == .ipv6,
            (relay.address[0] == 0xFE && relay.address[1] & 0x80 == 0x80) || relay.address[0] & 0xFE == 0xFC
        {
            return "The relays are on a link-local, unique-local or site-local address (\(relay.host)): coturn "
                + "4.13.1 and later refuse such peers before any allowed-peer-ip. Give coturn a global relay-ip "
                + "(and external-ip behind NAT) and restart it."
        }
        return "A denied-peer-ip range in turnserver.conf covers the TURN server's own relay address. Add "
            + "allowed-peer-ip=<the TURN server's public address> (an allow wins over a deny) and restart coturn."
    }

    /// `1.2.3.4` from `1.2.3.4:5`, `::1` from `[::1]:5`.
    static func host(of address: String) -> String {
        if address.hasPrefix("["), let close = address.firstIndex(of: "]") {
            return String(address[address.index(after: address.startIndex)..<close])
        }
        return address.lastIndex(of: ":").map { String(address[..<$0]) } ?? address
    }
}
