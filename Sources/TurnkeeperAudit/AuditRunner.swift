import TurnkeeperCore
import TurnkeeperExecution
import TurnkeeperProbe
public import TurnkeeperSTUN
public import TurnkeeperTURNClient

/// What `turnkeeper audit` is given.
public struct AuditOptions: Sendable {
    public var credentials: TURNCredentials?
    public var tls: TLSOptions
    public var stepTimeout: Duration
    /// A STUN server outside the TURN host's network, named by the admin: a peer the audit sends to.
    public var reflector: TransportAddress?
    /// A peer the admin names to prove that packets really get through (a STUN server, which answers); the
    /// only other peer the audit sends to.
    public var dataPeer: TransportAddress?
    /// Whether to hold allocations until a quota refuses one (off in the daemon: it holds relay ports).
    public var checkQuotas: Bool
    /// Credentials signed by secrets that were retired: the server must refuse each.
    public var retired: [TURNCredentials]
    /// At most this many allocations are held with one credential while looking for a quota.
    public var quotaProbeLimit: Int
    public var nowSeconds: Int64

    public init(
        credentials: TURNCredentials?, tls: TLSOptions = TLSOptions(), stepTimeout: Duration = .seconds(3),
        reflector: TransportAddress? = nil, dataPeer: TransportAddress? = nil, retired: [TURNCredentials] = [],
        checkQuotas: Bool = true, quotaProbeLimit: Int = 50, nowSeconds: Int64
    ) {
        self.dataPeer = dataPeer
        self.checkQuotas = checkQuotas
        self.retired = retired
        self.quotaProbeLimit = quotaProbeLimit
        self.credentials = credentials
        self.tls = tls
        self.stepTimeout = stepTimeout
        self.reflector = reflector
        self.nowSeconds = nowSeconds
    }
}

/// Tests a TURN server's behaviour from outside, as an attacker holding a credential would, and judges from
/// its answers alone. Toward a forbidden address it only asks for a permission (and a channel): a granted
/// one is the finding, and no packet is ever sent there. Data goes only to the reflector the admin named.
public enum AuditRunner {
    /// A certificate that expires within this is a finding.
    public static let certificateWarning: Int64 = 14 * 86_400

    public static func run(_ uris: [TURNURI], options: AuditOptions) async -> AuditReport {
        var targets: [AuditTarget] = []
        var findings: [AuditFinding] = []
        var audits: [EndpointAudit] = []
        for uri in uris.prefix(ProbeRunner.maximumURIs) {
            let endpoints: [ServerEndpoint]
            do {
                endpoints = try await uri.endpoints()
            } catch {
                targets.append(
                    AuditTarget(
                        uri: uri.text, address: uri.host, transport: "\(uri.transport)",
                        checks: [AuditCheck(check: .resolve, result: .error, detail: "\(error)")]))
                continue
            }
            for endpoint in endpoints.prefix(ProbeRunner.maximumAddresses) {
                var audit = EndpointAudit(uri: uri, endpoint: endpoint, options: options)
                await audit.run()
                audits.append(audit)
            }
        }
        // Quotas last, everywhere: coturn counts a released allocation against the quota for a moment after
        // its release, and the other checks must not meet the allocations this one held.
        for index in audits.indices {
            await audits[index].quota()
            targets.append(audits[index].target)
            findings += audits[index].findings
        }
        let order = AuditFinding.Severity.allCases
        findings.sort { order.firstIndex(of: $0.severity)! < order.firstIndex(of: $1.severity)! }
        return AuditReport(targets: targets, findings: findings)
    }
}

/// The checks at one address of one URI.
struct EndpointAudit {
    let uri: TURNURI
    let endpoint: ServerEndpoint
    let options: AuditOptions
    private(set) var target: AuditTarget
    private(set) var findings: [AuditFinding] = []
    /// A handshake of TLS 1.2 or later completed at this address in this run.
    private var modernTLS = false
    /// The SOFTWARE attribute the server sent, if any.
    private var software: String?
    /// The credentials were granted an allocation of the URI's family in this run.
    private var primaryAllocated = false

    init(uri: TURNURI, endpoint: ServerEndpoint, options: AuditOptions) {
        self.uri = uri
        self.endpoint = endpoint
        self.options = options
        target = AuditTarget(
            uri: uri.text, address: endpoint.address.hostAndPort, transport: "\(endpoint.transport)", checks: [])
    }

    private var name: String { "\(uri.text) (\(endpoint.address.hostAndPort))" }
    private var deadline: ContinuousClock.Instant { .now + options.stepTimeout }

    private mutating func pass(_ check: AuditCheckID, _ detail: String) {
        target.checks.append(AuditCheck(check: check, result: .pass, detail: detail))
    }

    private mutating func notTested(_ check: AuditCheckID, _ detail: String) {
        target.checks.append(AuditCheck(check: check, result: .notTested, detail: detail))
    }

    private mutating func failed(_ check: AuditCheckID, _ error: any Error) {
        target.checks.append(
            AuditCheck(check: check, result: .error, detail: ServerText.escaped("\(error)", limit: 300)))
    }

    private mutating func found(
        _ check: AuditCheckID, _ severity: AuditFinding.Severity, problem: String, evidence: String, fix: String,
        peer: String? = nil, cve: String? = nil, form: String? = nil
    ) {
        target.checks.append(AuditCheck(check: check, result: .finding, detail: evidence))
        findings.append(
            AuditFinding(
                check: check, severity: severity, target: name, problem: problem, evidence: evidence, fix: fix,
                peer: peer, cve: cve, form: form))
    }

    mutating func run() async {
        await anonymous()
        await withCredentials()
        await otherFamily()
        judgeVersion()
        if endpoint.transport == .tls {
            await certificate()
            await legacyTLS()
        } else {
            notTested(.certificate, "not a turns: URI")
            notTested(.tlsVersions, "not a turns: URI")
        }
        await retiredSecrets()
    }

    /// Allocations with one credential, each on its own socket and all held at once, until the server
    /// refuses one (486, 508) or `quotaProbeLimit` are held; then all are released.
    mutating func quota() async {
        guard options.checkQuotas else {
            notTested(.quotas, "not run here (it holds relay ports on a live server): run turnkeeper audit by hand")
            return
        }
        guard let credentials = options.credentials else {
            notTested(.quotas, "needs credentials")
            return
        }
        let limit = options.quotaProbeLimit
        do {
            let (held, refusal) = try await Self.hold(
                0, limit: limit, endpoint: endpoint, options: options, credentials: credentials, family: family)
            switch refusal?.code {
            case STUNErrorCode.allocationQuotaReached?:
                pass(.quotas, "an allocation was refused while \(held) were held (\(refusal!))")
            case _ where held == 0:
                target.checks.append(
                    AuditCheck(
                        check: .quotas, result: .error,
                        detail: "the first allocation was refused (\(refusal.map { "\($0)" } ?? "no answer")), even "
                            + "after 5 s: another client holds them all, or nothing relays"))
            case STUNErrorCode.insufficientCapacity?:
                found(
                    .quotaMissing, .medium,
                    problem: "One credential took the server's whole relay capacity (\(held) allocations) before any "
                        + "per-user quota stopped it: one credential holder can leave no relay for anyone else.",
                    evidence: "\(held) allocations with one username were granted and held together, then 508 "
                        + "(insufficient capacity)",
                    fix: "Add user-quota=12 to turnserver.conf (below what total-quota and min-port..max-port allow), "
                        + "and restart coturn.")
            default:
                found(
                    .quotaMissing, .medium,
                    problem: "One credential held \(held) allocations at once and the server refused none: there is no "
                        + "quota at or below \(limit), so one credential holder can take relay ports and bandwidth "
                        + "from everyone else.",
                    evidence: "\(held) allocations with one username were granted and held together",
                    fix: "Add user-quota=12 and total-quota=1200 to turnserver.conf (12 allocations carry a few calls "
                        + "per user; raise total-quota with the relay port range), and restart coturn.")
            }
        } catch {
            failed(.quotas, error)
        }
    }

    static func hold(
        _ count: Int, limit: Int, endpoint: ServerEndpoint, options: AuditOptions, credentials: TURNCredentials,
        family: TransportAddress.Family
    ) async throws -> (held: Int, refusal: STUNErrorCode?) {
        if count == limit { return (count, nil) }
        // The first allocation may meet those an earlier target's quota check released a moment ago: it is
        // retried for up to five seconds before a refusal counts.
        let settle = ContinuousClock.now + .seconds(5)
        return try await Connector.withConnection(
            to: endpoint, tls: options.tls, connectTimeout: options.stepTimeout
        ) { connection in
            let client = TURNClient(connection: connection, credentials: credentials)
            while true {
                do {
                    _ = try await client.allocate(family: family, deadline: .now + options.stepTimeout)
                    break
                } catch let error as TURNClientError {
                    guard case .errorResponse(let code) = error.kind,
                        [STUNErrorCode.allocationQuotaReached, STUNErrorCode.insufficientCapacity].contains(code.code)
                    else { throw error }
                    if count > 0 || ContinuousClock.now >= settle { return (count, code) }
                    try await Pause.for(.milliseconds(250))
                }
            }
            // Released on the way back whatever happens deeper: a UDP allocation outlives its socket.
            let result: (held: Int, refusal: STUNErrorCode?)
            do {
                result = try await hold(
                    count + 1, limit: limit, endpoint: endpoint, options: options, credentials: credentials,
                    family: family)
            } catch {
                _ = try? await client.refresh(lifetime: 0, deadline: .now + options.stepTimeout)
                throw error
            }
            _ = try? await client.refresh(lifetime: 0, deadline: .now + options.stepTimeout)
            return result
        }
    }

    /// Credentials signed by retired secrets: each must be refused.
    private mutating func retiredSecrets() async {
        guard !options.retired.isEmpty else {
            notTested(
                .retiredSecret,
                "give --retired-secret-file: turnkeeper keeps only digests of retired secrets, and proved each "
                    + "retirement when it happened")
            return
        }
        for (index, credentials) in options.retired.enumerated() {
            let family = family
            let options = options
            do {
                let granted = try await Connector.withConnection(
                    to: endpoint, tls: options.tls, connectTimeout: options.stepTimeout
                ) { connection in
                    let client = TURNClient(connection: connection, credentials: credentials)
                    do {
                        _ = try await client.allocate(family: family, deadline: .now + options.stepTimeout)
                        _ = try? await client.refresh(lifetime: 0, deadline: .now + options.stepTimeout)
                        return true
                    } catch let error as TURNClientError {
                        if case .credentialsRejected = error.kind { return false }
                        throw error
                    }
                }
                switch granted {
                case false:
                    pass(.retiredSecret, "retired secret \(index + 1): refused (401)")
                case true:
                    found(
                        .retiredSecretAccepted, .high,
                        problem: "The server still accepts credentials signed by a secret that was retired: anyone "
                            + "holding an old or leaked credential can still relay through it.",
                        evidence: "an allocation with a credential of retired secret \(index + 1) was granted",
                        fix: "Remove that secret from coturn: `turnkeeper status` lists what coturn accepts, and "
                            + "`turnkeeper rotate --resume` retires what turnkeeper knows of; a static-auth-secret "
                            + "line turnkeeper does not manage must be removed by hand (then restart coturn), and "
                            + "so must a turn_secret row.")
                }
            } catch {
                failed(.retiredSecret, error)
            }
        }
    }

    /// Without credentials: the SOFTWARE a Binding answer discloses, and whether an Allocate is refused.
    private mutating func anonymous() async {
        do {
            let (software, allocated) = try await Connector.withConnection(
                to: endpoint, tls: options.tls, connectTimeout: options.stepTimeout
            ) { connection in
                let binding = try await connection.request(
                    STUNMessage(STUNMessageType(.binding, .request)), integrity: nil, deadline: deadline)
                let client = TURNClient(connection: connection, credentials: nil)
                do {
                    let allocation = try await client.allocate(family: family, deadline: deadline)
                    _ = try? await client.refresh(lifetime: 0, deadline: deadline)
                    return (binding.message.text(.software), Result<Allocation, TURNClientError>.success(allocation))
                } catch let error as TURNClientError {
                    return (binding.message.text(.software), .failure(error))
                }
            }
            self.software = software
            if let software {
                found(
                    .softwareDisclosed, .low,
                    problem: "The server names its software and version in every answer, which tells an attacker "
                        + "which known vulnerabilities to try.",
                    evidence: "a Binding answer carries SOFTWARE \"\(ServerText.escaped(software, limit: 100))\"",
                    fix: "Add no-software-attribute to turnserver.conf.")
            } else {
                pass(.softwareDisclosed, "answers carry no SOFTWARE attribute")
            }
            switch allocated {
            case .success(let allocation):
                found(
                    .noAuth, .critical,
                    problem: "The server relays for anyone: it granted an allocation to a request without "
                        + "credentials, so anyone can use its bandwidth and reach whatever it may relay to.",
                    evidence: "an Allocate without credentials was granted the relay \(allocation.relayed)",
                    fix: "Remove no-auth from turnserver.conf; set use-auth-secret with static-auth-secret (or "
                        + "turnkeeper's database store) and restart coturn.")
            case .failure(let error) where error.kind == .credentialsRequired:
                pass(.noAuth, "an Allocate without credentials is refused (401)")
            case .failure(let error):
                failed(.noAuth, error)
            }
        } catch {
            failed(.softwareDisclosed, error)
            failed(.noAuth, error)
        }
    }

    private var family: TransportAddress.Family { endpoint.address.protocol == .inet6 ? .ipv6 : .ipv4 }

    /// The server's own address, as reached.
    private var listeningAddress: TransportAddress? {
        guard let host = endpoint.address.ipAddress else { return nil }
        if family == .ipv4 { return TransportAddress(ipv4: host, port: 9) }
        return nil
    }

    private mutating func judgeDataPath(_ data: Result<TransportAddress?, any Error>?) {
        guard let dataPeer = options.dataPeer else {
            notTested(
                .dataPath, "give --data-peer IP:PORT, a STUN server you run, to prove that packets get through")
            return
        }
        switch data {
        case nil:
            notTested(.dataPath, "the data peer is not of the relay's address family")
        case .failure(let error):
            if let error = error as? TURNClientError, case .errorResponse(let code) = error.kind,
                code.code == STUNErrorCode.forbidden
            {
                pass(.dataPath, "a permission for \(dataPeer) was refused (403): nothing was sent")
            } else {
                failed(.dataPath, error)
            }
        case .success(nil):
            pass(.dataPath, "\(dataPeer) did not answer a Binding sent through the relay")
        case .success(_?):
            if let range = ForbiddenPeer.covering(dataPeer) {
                found(
                    .dataPath, range.severity,
                    problem: "Packets relayed through the server reach \(dataPeer.host) in \(range.range) and come "
                        + "back: a credential holder can talk to services there.",
                    evidence: "a STUN Binding sent through the relay to \(dataPeer) was answered", fix: range.fix)
            } else {
                pass(.dataPath, "a Binding sent through the relay to \(dataPeer) was answered")
            }
        }
    }

    /// With a credential: forbidden peers, the server's own relay address, and the reflector.
    private mutating func withCredentials() async {
        guard let credentials = options.credentials else {
            for check: AuditCheckID in [.forbiddenPeers, .externalAddress] {
                notTested(check, "needs credentials: give --secret-file, --synapse-config or --homeserver")
            }
            return
        }
        let peers = ForbiddenPeer.peers(for: family)
        let reflector = options.reflector
        let dataPeer = options.dataPeer
        let listeningAddress = listeningAddress
        do {
            let outcome = try await Self.settling { [self] in
                try await Connector.withConnection(
                    to: endpoint, tls: options.tls, connectTimeout: options.stepTimeout
                ) { connection in
                    let client = TURNClient(connection: connection, credentials: credentials)
                    let allocation = try await client.allocate(family: family, deadline: deadline)
                    var channel: UInt16 = 0x4000
                    let answers = await Self.askPeers(
                        client, peers, family: allocation.relayed.family, channel: &channel, deadline: deadline)
                    let own = await Self.ask(client, about: allocation.relayed, channel: &channel, deadline: deadline)
                    // The address we reached it at, when it is not the relay's: its other services live there.
                    var listening: PeerAnswer?
                    if let address = listeningAddress, address.host != allocation.relayed.host {
                        listening = await Self.ask(client, about: address, channel: &channel, deadline: deadline)
                    }
                    var seen: Result<TransportAddress?, any Error>?
                    if let reflector, reflector.family == allocation.relayed.family {
                        seen = await Result { () async throws -> TransportAddress? in
                            try await Self.reflect(client, to: reflector, deadline: deadline)
                        }
                    }
                    var data: Result<TransportAddress?, any Error>?
                    if let dataPeer, dataPeer.family == allocation.relayed.family {
                        data = await Result { () async throws -> TransportAddress? in
                            try await Self.reflect(client, to: dataPeer, deadline: deadline)
                        }
                    }
                    _ = try? await client.refresh(lifetime: 0, deadline: deadline)
                    return (allocation, answers, own, listening, seen, data)
                }
            }
            let (allocation, answers, own, listening, seen, data) = outcome
            primaryAllocated = true
            switch listening {
            case nil:
                break
            case .permission?, .channel?:
                pass(
                    .ownListeningAddress,
                    "granted for \(listeningAddress?.host ?? "its address"): a credential holder can reach every UDP "
                        + "service on that address through the relay; listen on nothing else there, or deny it")
            case .refused?:
                pass(.ownListeningAddress, "refused (403)")
            case .failed(let error)?:
                failed(.ownListeningAddress, error)
            }
            judgeDataPath(data)
            for (peer, answer) in zip(peers, answers) {
                record(peer, answer)
            }
            if let last = answers.last { judgePublicPeer(ForbiddenPeer.publicControl(allocation.relayed.family), last) }
            switch own {
            case .permission, .channel:
                pass(
                    .ownRelayAddress,
                    "granted for \(allocation.relayed.host): relay-to-relay calls between this server's users need "
                        + "it; nothing but coturn's relays should listen on that address")
            case .refused:
                pass(
                    .ownRelayAddress,
                    "refused for \(allocation.relayed.host): calls where both parties relay through this server "
                        + "fail (turnkeeper probe says how to allow it)")
            case .failed(let error):
                failed(.ownRelayAddress, error)
            }
            if let seen, let reflector {
                judgeExternalAddress(relayed: allocation.relayed, reflector: reflector, seen: seen)
            } else if reflector != nil {
                notTested(.externalAddress, "the reflector is not of the relay's address family")
            } else {
                notTested(
                    .externalAddress,
                    "give --reflector HOST:PORT, a STUN server outside the TURN host's network, to compare the "
                        + "relayed address with the one its traffic really leaves from")
            }
        } catch {
            failed(.forbiddenPeers, error)
            failed(.externalAddress, error)
        }
    }

    /// A relay of the other family than the URI's, asked for by name (REQUESTED-ADDRESS-FAMILY), as an attacker
    /// would: coturn hands an IPv6 relay to anyone who asks, over an IPv4 listener too. On it, that family's
    /// forbidden peers (for IPv6, with every forbidden IPv4 range in its IPv6 forms). A server that refuses the
    /// family (440) passes.
    private mutating func otherFamily() async {
        let other: TransportAddress.Family = family == .ipv4 ? .ipv6 : .ipv4
        let check: AuditCheckID = other == .ipv6 ? .ipv6Peers : .ipv4Peers
        guard let credentials = options.credentials else {
            notTested(check, "needs credentials: give --secret-file, --synapse-config or --homeserver")
            return
        }
        let peers = ForbiddenPeer.peers(for: other)
        let worked = primaryAllocated
        let outcome = await Result { () async throws -> (Allocation, [PeerAnswer]) in
            try await Self.settling(credentialsJustWorked: worked) { [self] in
                try await Connector.withConnection(
                    to: endpoint, tls: options.tls, connectTimeout: options.stepTimeout
                ) { connection in
                    let client = TURNClient(connection: connection, credentials: credentials)
                    let allocation = try await client.allocate(family: other, deadline: deadline, naming: true)
                    var channel: UInt16 = 0x4000
                    let answers = await Self.askPeers(
                        client, peers, family: other, channel: &channel, deadline: deadline)
                    _ = try? await client.refresh(lifetime: 0, deadline: deadline)
                    return (allocation, answers)
                }
            }
        }
        switch outcome as Result<(Allocation, [PeerAnswer]), any Error>? {
        case .success(let (allocation, answers))?:
            for (peer, answer) in zip(peers, answers) { record(peer, answer) }
            if let last = answers.last { judgePublicPeer(ForbiddenPeer.publicControl(other), last) }
            pass(
                check,
                "a relay of the other family was granted on request (\(allocation.relayed.host)), and \(peers.count) "
                    + "forbidden peers were asked of it"
                    + (other == .ipv6 ? ", IPv4 ranges in their IPv6 forms too" : ""))
        case .failure(let error)? where Self.errorCode(error) == STUNErrorCode.addressFamilyNotSupported:
            pass(check, "the server refuses a relay of that family (440), so no such peer can be reached through it")
        case .failure(let error)?:
            failed(check, error)
        case nil:
            break
        }
    }

    /// `attempt` again on a new connection, a second later, when its Allocate met 437 (a released allocation's
    /// 5-tuple) or 486/508 (coturn still counts allocations released a moment ago, such as the last audit's
    /// quota check's): at most four tries.
    /// With `credentialsJustWorked`, a refusal of credentials the server granted a moment ago is tried again
    /// too: coturn refuses logins while its user database is busy (at its start, say), whatever the secret.
    static func settling<T>(credentialsJustWorked: Bool = false, _ attempt: () async throws -> T) async throws -> T {
        var tries = 0
        while true {
            do {
                return try await attempt()
            } catch {
                tries += 1
                var rejected = false
                if let error = error as? TURNClientError, case .credentialsRejected = error.kind { rejected = true }
                let settles =
                    errorCode(error).map {
                        [
                            STUNErrorCode.allocationMismatch, STUNErrorCode.allocationQuotaReached,
                            STUNErrorCode.insufficientCapacity,
                        ].contains($0)
                    } ?? false
                guard tries < 4, settles || (rejected && credentialsJustWorked) else { throw error }
                try await Pause.for(.seconds(1))
            }
        }
    }

    static func errorCode(_ error: any Error) -> Int? {
        if let error = error as? TURNClientError, case .errorResponse(let code) = error.kind { return code.code }
        return nil
    }

    /// The coturn version SOFTWARE names, and the known vulnerabilities it carries: each with the check that
    /// confirms or clears it here, or why none can, and both fixes. Without SOFTWARE, the active checks decide.
    private mutating func judgeVersion() {
        guard let software else {
            notTested(
                .coturnVersion,
                "the version is unknown (no SOFTWARE attribute, as coturn 4.7+ and no-software-attribute send "
                    + "none): the active checks above decide")
            return
        }
        guard let version = CoturnVersion(software: software) else {
            notTested(.coturnVersion, "SOFTWARE does not name a coturn version: the active checks above decide")
            return
        }
        let carried = version.advisories
        guard !carried.isEmpty else {
            pass(.coturnVersion, "coturn \(version) carries none of the vulnerabilities turnkeeper knows")
            return
        }
        let lines = carried.map { advisory -> String in
            let status: String
            if let named = advisory.check {
                // TurnkeeperCore names the check as text; AuditCheckTests holds every such name to a real check.
                let check = AuditCheckID(rawValue: named)
                // The mapped peers are asked on the IPv6 relay; 0.0.0.0 on the IPv4 one.
                let ran: AuditCheckID = advisory.needsIPv6 ? .ipv6Peers : check
                let confirmed =
                    advisory.needsIPv6
                    ? findings.contains { $0.cve == advisory.id } : findings.contains { $0.check == check }
                if confirmed {
                    status = "confirmed here (see the \(check) findings)"
                } else if target.checks.contains(where: { $0.check == ran && $0.result == .pass }) {
                    status = "cleared here by the active check (\(advisory.test))"
                } else {
                    status = "not tested here (\(advisory.test))"
                }
            } else {
                status = "not testable from outside (\(advisory.test))"
            }
            return "\(advisory.id) (\(advisory.what); fixed in \(advisory.fixedIn)): \(status). Fix: upgrade to "
                + "\(advisory.fixedIn) or later" + (advisory.configFix.map { "; until then, \($0)" } ?? "")
        }
        pass(.coturnVersion, "coturn \(version) carries " + lines.joined(separator: " | "))
    }

    enum PeerAnswer: Sendable {
        case permission
        case channel
        case refused
        case failed(any Error)
    }

    /// Each forbidden peer, then the public control of the relay's family, last: their answers in that order.
    static func askPeers(
        _ client: TURNClient, _ peers: [ForbiddenPeer], family: TransportAddress.Family, channel: inout UInt16,
        deadline: ContinuousClock.Instant
    ) async -> [PeerAnswer] {
        var answers: [PeerAnswer] = []
        for peer in peers {
            answers.append(await ask(client, about: peer.address, channel: &channel, deadline: deadline))
        }
        answers.append(
            await ask(client, about: ForbiddenPeer.publicControl(family), channel: &channel, deadline: deadline))
        return answers
    }

    /// CreatePermission, and ChannelBind when that is refused: either granted is relaying allowed.
    static func ask(
        _ client: TURNClient, about peer: TransportAddress, channel: inout UInt16, deadline: ContinuousClock.Instant
    ) async -> PeerAnswer {
        func forbidden(_ error: any Error) -> Bool {
            if let error = error as? TURNClientError, case .errorResponse(let code) = error.kind,
                code.code == STUNErrorCode.forbidden
            {
                return true
            }
            return false
        }
        do {
            try await client.createPermission(for: [peer], deadline: deadline)
            return .permission
        } catch  where forbidden(error) {
            channel += 1
            do {
                try await client.channelBind(channel, to: peer, deadline: deadline)
                return .channel
            } catch  where forbidden(error) {
                return .refused
            } catch {
                return .failed(error)
            }
        } catch {
            return .failed(error)
        }
    }

    /// The positive control: a global address must be granted, or calls to peers on the Internet fail.
    private mutating func judgePublicPeer(_ address: TransportAddress, _ answer: PeerAnswer) {
        switch answer {
        case .permission, .channel:
            pass(.publicPeer, "\(address.host) granted (nothing was sent there): peers on the Internet are reachable")
        case .refused:
            found(
                .publicPeer, .high,
                problem: "The server refuses to relay to a public address (\(address.host)): calls to peers on the "
                    + "Internet through it fail, though its own relays may still reach each other.",
                evidence: "a CreatePermission for \(address.host) was refused (403; nothing was sent there)",
                fix: "A denied-peer-ip range in turnserver.conf is too wide. In coturn a range that starts at :: "
                    + "covers every IPv4 peer: write the IPv4-compatible range as denied-peer-ip=::1-::ffff:ffff. "
                    + "Remove any range that covers public addresses and restart coturn. If this server relays only to "
                    + "listed peers on purpose (an SFU's TURN), this finding is expected.",
                peer: address.host)
        case .failed(let error):
            failed(.publicPeer, error)
        }
    }

    private mutating func record(_ peer: ForbiddenPeer, _ answer: PeerAnswer) {
        let host = peer.address.host
        switch answer {
        case .permission, .channel:
            let how =
                if case .channel = answer {
                    "CreatePermission was refused, but a ChannelBind to \(host) was granted"
                } else {
                    "a CreatePermission for \(host) was granted"
                }
            let known =
                peer.cve.map { " This is \($0): coturn before 4.9.0 lets IPv4-mapped peers past its IPv4 checks." }
                ?? ""
            found(
                peer.check, peer.severity,
                problem: "The server relays to \(peer.range): anyone holding a credential can reach \(host) and "
                    + "its neighbours through it, from outside." + known,
                evidence: how + " (nothing was sent there)", fix: peer.fix, peer: host, cve: peer.cve,
                form: peer.form)
        case .refused:
            pass(peer.check, "\(host) refused (403)")
        case .failed(let error):
            failed(peer.check, error)
        }
    }

    /// A Binding request from the relayed address to the reflector, through the relay: the address it sees is
    /// the one the relay's traffic really leaves from. Sent every 500 ms until answered or the deadline.
    static func reflect(
        _ client: TURNClient, to reflector: TransportAddress, deadline: ContinuousClock.Instant
    ) async throws -> TransportAddress? {
        try await client.createPermission(for: [reflector], deadline: deadline)
        let request = STUNMessage(STUNMessageType(.binding, .request))
        let bytes = request.encoded(fingerprint: true)
        let (answers, input) = AsyncStream.makeStream(of: PeerData.self, bufferingPolicy: .bufferingNewest(16))
        client.connection.setPeerDataHandler { input.yield($0) }
        defer {
            client.connection.setPeerDataHandler(nil)
            input.finish()
        }
        return await withTaskGroup(of: TransportAddress?.self) { group in
            group.addTask {
                for await answer in answers {
                    guard case .indication(let from) = answer.source, from == reflector,
                        let decoded = try? DecodedSTUNMessage(answer.data),
                        decoded.message.transactionID == request.transactionID,
                        decoded.message.type.messageClass == .successResponse,
                        let seen = try? decoded.message.xorAddress(.xorMappedAddress)
                    else { continue }
                    return seen
                }
                return nil
            }
            group.addTask {
                while ContinuousClock.now < deadline {
                    try? await client.send(bytes, to: reflector)
                    do { try await Pause.for(.milliseconds(500)) } catch { break }
                }
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    private mutating func judgeExternalAddress(
        relayed: TransportAddress, reflector: TransportAddress, seen: Result<TransportAddress?, any Error>
    ) {
        switch seen {
        case .failure(let error):
            failed(.externalAddress, error)
        case .success(nil):
            target.checks.append(
                AuditCheck(
                    check: .externalAddress, result: .error,
                    detail: "the reflector \(reflector) did not answer through the relay before the deadline"))
        case .success(let seen?):
            if seen.host != relayed.host {
                let fix =
                    ForbiddenPeer.isPrivate(relayed)
                    ? "Add external-ip=\(seen.host)/\(relayed.host) to turnserver.conf and restart coturn."
                    : "Set external-ip=\(seen.host)/<relay-ip> in turnserver.conf (the address traffic really "
                        + "leaves from), or make the relay's traffic leave from \(relayed.host); restart coturn."
                found(
                    .externalIpMismatch, .high,
                    problem: "coturn hands out the relayed address \(relayed) but its relay's traffic reaches "
                        + "the Internet from \(seen.host): a stale or wrong external-ip, or traffic leaving by "
                        + "another route. Peers send media to \(relayed.host), and calls from outside get nothing.",
                    evidence: "the reflector \(reflector) saw a Binding from the relay \(relayed) come from \(seen)",
                    fix: fix)
            } else if seen.port != relayed.port {
                found(
                    .relayPortTranslated, .medium,
                    problem: "A NAT in front of coturn changes the relay's port (\(relayed.port) becomes "
                        + "\(seen.port)): peers send to the relayed port, and the NAT may drop it.",
                    evidence: "the reflector \(reflector) saw the relay \(relayed) as \(seen)",
                    fix: "Forward coturn's min-port..max-port 1:1, keeping ports, in the NAT in front of it.")
            } else {
                pass(.externalAddress, "the reflector \(reflector) sees the relay as \(seen), as coturn says")
            }
        }
    }

    /// For turns:, a handshake offering only TLS 1.0 and 1.1 must fail.
    private mutating func legacyTLS() async {
        do {
            switch try await TLSInspector.legacyVersion(of: endpoint, timeout: options.stepTimeout) {
            case .accepted(let version):
                found(
                    .tlsOldVersion, .high,
                    problem: "The server accepts TLS below 1.2, whose known weaknesses let an attacker on the path "
                        + "read or alter what it carries.",
                    evidence: "a handshake offering only TLS 1.0 and 1.1 completed with \(version)",
                    fix: "On coturn before 4.7, add no-tlsv1 and no-tlsv1_1 to turnserver.conf; from 4.7 those "
                        + "options are gone and OpenSSL sets the lowest version (OpenSSL 3 refuses 1.0 and 1.1 at its "
                        + "default security level). Either way, drop any cipher-list that lowers OpenSSL's security "
                        + "level (@SECLEVEL=0) and restart coturn.")
            case .refused:
                pass(.tlsVersions, "a handshake offering only TLS 1.0 and 1.1 was refused")
            case .unanswered where modernTLS:
                // A coturn that refuses old versions may leave such a hello unanswered, while TLS 1.2 works.
                pass(.tlsVersions, "a hello offering only TLS 1.0 and 1.1 went unanswered; TLS 1.2 or later works")
            case .unanswered:
                target.checks.append(
                    AuditCheck(
                        check: .tlsVersions, result: .error,
                        detail: "a hello offering only TLS 1.0 and 1.1 went unanswered, and no newer handshake "
                            + "worked either: nothing can be concluded"))
            }
        } catch {
            failed(.tlsVersions, error)
        }
    }

    /// For turns:, the certificate: its names, its chain (a verified handshake) and its expiry.
    private mutating func certificate() async {
        do {
            guard let summary = try await TLSInspector.certificate(of: endpoint, timeout: options.stepTimeout) else {
                target.checks.append(
                    AuditCheck(check: .certificate, result: .error, detail: "no certificate was presented"))
                return
            }
            modernTLS = true
            let host = uri.host.hasPrefix("[") ? String(uri.host.dropFirst().dropLast()) : uri.host
            let names = summary.names.prefix(10).map { ServerText.escaped($0, limit: 100) }.joined(separator: ", ")
            if !summary.names.contains(where: { Diagnostician.matches(host: host, name: $0) }) {
                found(
                    .certificateName, .high,
                    problem: "The TURN server's certificate does not name \(host), so clients refuse turns: to it.",
                    evidence: "the certificate names \(names.isEmpty ? "nothing" : names)",
                    fix: "Get a certificate that names \(host) (cert= and pkey= in turnserver.conf) and send coturn "
                        + "SIGUSR2.")
            } else if summary.notValidAfter >= options.nowSeconds {
                // Named right and in date: a verified handshake proves the chain.
                do {
                    try await Connector.withConnection(
                        to: endpoint, tls: options.tls, connectTimeout: options.stepTimeout
                    ) { connection in
                        _ = try await connection.request(
                            STUNMessage(STUNMessageType(.binding, .request)), integrity: nil, deadline: deadline)
                    }
                    pass(.certificateChain, "a verified handshake to \(host) succeeded")
                } catch let error as TURNClientError {
                    if case .tlsFailed = error.kind {
                        found(
                            .certificateChain, .high,
                            problem: "The TURN server's certificate for \(host) is not signed by a trusted authority, "
                                + "or its chain is incomplete: clients refuse turns: to it.",
                            evidence: "a verified handshake failed: \(error)",
                            fix: "Serve the full chain (cert= should be fullchain.pem), or give --ca-file to trust a "
                                + "private CA.")
                    } else {
                        failed(.certificateChain, error)
                    }
                }
            }
            let left = summary.notValidAfter - options.nowSeconds
            let until = WallClock.utcString(seconds: summary.notValidAfter)
            if left < 0 {
                found(
                    .certificateExpired, .high,
                    problem: "The TURN server's certificate has expired: clients refuse turns:, and calls from "
                        + "networks that allow only TLS fail.",
                    evidence: "the certificate expired on \(until)",
                    fix: "Renew it (certbot renew) and send coturn SIGUSR2 to reload certificates.")
            } else if left < AuditRunner.certificateWarning {
                found(
                    .certificateExpiring, .medium,
                    problem: "The TURN server's certificate expires in \(left / 86_400) days.",
                    evidence: "the certificate is valid until \(until)",
                    fix: "Renew it now (certbot renew), check that renewal runs by itself, and send coturn SIGUSR2.")
            } else {
                pass(.certificate, "valid until \(until)")
            }
        } catch {
            failed(.certificate, error)
        }
    }
}

extension Result where Failure == any Error {
    init(_ body: () async throws -> Success) async {
        do {
            self = .success(try await body())
        } catch {
            self = .failure(error)
        }
    }
}
