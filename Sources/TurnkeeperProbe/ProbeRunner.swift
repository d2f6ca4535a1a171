package import NIOCore
import Synchronization
import TurnkeeperCore
import TurnkeeperExecution
package import TurnkeeperSTUN
public import TurnkeeperTURNClient

/// How a probe runs.
public struct ProbeOptions: Sendable {
    public var credentials: TURNCredentials?
    public var tls: TLSOptions
    /// Each step's deadline.
    public var stepTimeout: Duration
    /// Packets each way, on each relay path.
    public var packets: Int
    /// Bytes a packet: 160 is 20 ms of Opus voice.
    public var packetSize: Int

    public init(
        credentials: TURNCredentials? = nil,
        tls: TLSOptions = TLSOptions(),
        stepTimeout: Duration = .seconds(3),
        packets: Int = 10,
        packetSize: Int = 160
    ) {
        self.credentials = credentials
        self.tls = tls
        self.stepTimeout = stepTimeout
        self.packets = packets
        self.packetSize = packetSize
    }
}

/// Runs the probe's steps against every URI and every address it resolves to, concurrently.
/// Mechanism lives in TurnkeeperTURNClient; what the results mean lives in ``Diagnostician``.
public enum ProbeRunner {
    /// Bounds on what one probe touches: URIs (a homeserver's answer chooses them), addresses per URI (DNS
    /// chooses them), and URIs probed at once.
    public static let maximumURIs = 32
    public static let maximumAddresses = 8
    static let concurrentURIs = 16

    public static func run(_ uris: [TURNURI], options: ProbeOptions) async -> [TargetReport] {
        let uris = Array(uris.prefix(maximumURIs))
        // The other family is a question about the server, not the transport: asked once per host, on its UDP
        // URI when there is one, so that a probe's allocations stay within a user quota.
        let asking = uris.map { uri in
            uri.transport == .udp || !uris.contains { $0.host == uri.host && $0.transport == .udp && $0.isTURN }
        }
        return await withTaskGroup(of: [(Int, TargetReport)].self) { group in
            var pending = uris.enumerated().makeIterator()
            for _ in 0..<concurrentURIs {
                guard let (index, uri) = pending.next() else { break }
                group.addTask {
                    await probe(uri, options: options, asksOtherFamily: asking[index]).map { (index, $0) }
                }
            }
            var reports: [(Int, TargetReport)] = []
            for await batch in group {
                reports += batch
                if let (index, uri) = pending.next() {
                    group.addTask {
                        await probe(uri, options: options, asksOtherFamily: asking[index]).map { (index, $0) }
                    }
                }
            }
            return reports.sorted { $0.0 < $1.0 }.map(\.1)
        }
    }

    static func probe(_ uri: TURNURI, options: ProbeOptions, asksOtherFamily: Bool = true) async -> [TargetReport] {
        let clock = ContinuousClock()
        let start = clock.now
        let endpoints: [ServerEndpoint]
        do {
            endpoints = try await uri.endpoints()
        } catch {
            let step = StepReport(
                step: .resolve,
                status: .fail,
                milliseconds: milliseconds(clock.now - start),
                detail: "\(error)",
                failure: .resolve
            )
            return [TargetReport(uri: uri.text, transport: uri.transport.rawValue, address: uri.host, steps: [step])]
        }
        return await withTaskGroup(of: (Int, TargetReport).self) { group in
            for (index, endpoint) in endpoints.prefix(maximumAddresses).enumerated() {
                group.addTask {
                    let probe = TargetProbe(
                        uri: uri, endpoint: endpoint, options: options, asksOtherFamily: asksOtherFamily)
                    return (index, await probe.run())
                }
            }
            var reports: [(Int, TargetReport)] = []
            for await report in group { reports.append(report) }
            return reports.sorted { $0.0 < $1.0 }.map(\.1)
        }
    }
}

extension TransportAddress {
    /// The same address in STUN's terms, to reuse its classification (private, loopback).
    package init(_ address: SocketAddress) throws {
        let (family, bytes): (Family, [UInt8]) =
            switch address {
            case .v4(let v4): (.ipv4, withUnsafeBytes(of: v4.address.sin_addr) { Array($0) })
            case .v6(let v6): (.ipv6, withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) })
            default: throw ProbeError("\(address) is not an IP address")
            }
        guard let made = TransportAddress(family: family, address: bytes, port: UInt16(address.port ?? 0)) else {
            throw ProbeError("\(address) is not an IP address")
        }
        self = made
    }
}

package func milliseconds(_ duration: Duration) -> Double {
    let (seconds, attoseconds) = duration.components
    return (Double(seconds) * 1000 + Double(attoseconds) / 1e15).rounded(toPlaces: 3)
}

extension Double {
    package func rounded(toPlaces places: Int) -> Double {
        var scale = 1.0
        for _ in 0..<places { scale *= 10 }
        return (self * scale).rounded() / scale
    }
}

extension Duration {
    package var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// The steps against one address: binding; then, for TURN, a call between two relays.
package struct TargetProbe {
    let uri: TURNURI
    let endpoint: ServerEndpoint
    let options: ProbeOptions
    /// Whether this target asks for the other family's relay (another URI to the same host may ask instead).
    var asksOtherFamily = true

    /// The steps in order; those not reached are reported as skipped.
    private static let turnSteps: [StepReport.Name] = [
        .allocation, .permission, .relaySendData, .channel, .relayChannelData, .release, .otherFamily,
    ]

    func run() async -> TargetReport {
        // A 437 (allocation mismatch) means our new socket drew a local port whose 5-tuple the server still
        // ties to an earlier allocation; new sockets draw new ports, so one rerun settles it.
        let first = await attempt()
        let mismatch = first.steps.contains { $0.facts["errorCode"] == String(STUNErrorCode.allocationMismatch) }
        return mismatch ? await attempt() : first
    }

    private var planned: [StepReport.Name] { [.binding] + (uri.isTURN ? Self.turnSteps : []) }

    private func attempt() async -> TargetReport {
        let log = StepLog()
        do {
            try await Connector.withConnection(to: endpoint, tls: options.tls, connectTimeout: options.stepTimeout) {
                connection in
                try await call(caller: TURNClient(connection: connection, credentials: options.credentials), log: log)
            }
        } catch {
            // A connection failed (refused, TLS, the callee's own connection): the first planned step not
            // yet recorded carries the failure, so it can never pass as a mere skip.
            let recorded = Set(log.steps.map(\.step))
            if let next = planned.first(where: { !recorded.contains($0) }) {
                log.fail(next, error, milliseconds: 0)
            }
        }
        var steps = log.steps
        let failed = steps.contains { $0.status == .fail }
        for name in planned where !steps.contains(where: { $0.step == name }) {
            // Without credentials nothing past the binding can run: say so, and not that something failed.
            let detail =
                options.credentials == nil && !failed
                ? "not run: no credentials, so no relay was allocated and relaying is untested"
                : "not run: an earlier step failed"
            steps.append(StepReport(step: name, status: .skip, milliseconds: 0, detail: detail))
        }
        // In planned order, run or not: the other family's relay is asked after the call's steps.
        let order = Dictionary(uniqueKeysWithValues: planned.enumerated().map { ($1, $0) })
        steps = steps.enumerated().sorted { left, right in
            (order[left.element.step] ?? -1, left.offset) < (order[right.element.step] ?? -1, right.offset)
        }.map(\.element)
        return TargetReport(
            uri: uri.text, transport: endpoint.transport.rawValue, address: endpoint.address.hostAndPort, steps: steps)
    }

    private func deadline() -> ContinuousClock.Instant { .now + options.stepTimeout }

    /// How long the binding listens for an ICMP error beside its own transaction: "port unreachable" from a host
    /// on the path comes within a round trip; a second is the most the verdict may take.
    static let icmpWindow: Duration = .seconds(1)

    /// The binding; over UDP, an ICMP error heard meanwhile (``ICMPWatch``) ends it at once as refused (port
    /// unreachable) or rejected, where the transaction alone would wait out every retransmission.
    static func binding(_ client: TURNClient, endpoint: ServerEndpoint, deadline: ContinuousClock.Instant)
        async throws -> TransportAddress
    {
        guard endpoint.transport == .udp else { return try await client.binding(deadline: deadline) }
        return try await withThrowingTaskGroup(of: TransportAddress?.self) { group in
            group.addTask { try await client.binding(deadline: deadline) }
            group.addTask {
                let request = STUNMessage(STUNMessageType(.binding, .request)).encoded()
                let window = min(icmpWindow, deadline - .now)
                switch await ICMPWatch.answer(to: endpoint.address, datagram: request, timeout: window) {
                case .none: return nil
                case .portUnreachable: throw TURNClientError(.connectionRefused, method: .binding)
                case .rejected: throw TURNClientError(.rejectedByNetwork, method: .binding)
                }
            }
            while let answer = try await group.next() {
                if let mapped = answer {
                    group.cancelAll()
                    return mapped
                }
            }
            // Not reached: the binding's task returns an address or throws.
            throw TURNClientError(.closed, method: .binding)
        }
    }

    /// A relay of `family`, as a client over that family asks; a server without one (440 to an IPv6 request)
    /// gets the default IPv4 request next, as clients taking the default family make. True when it fell back.
    package static func allocate(
        _ client: TURNClient, preferring family: TransportAddress.Family, deadline: ContinuousClock.Instant
    )
        async throws -> (Allocation, fallback: Bool)
    {
        do {
            return (try await client.allocate(family: family, deadline: deadline), false)
        } catch let error as TURNClientError
            where family == .ipv6 && error.errorCode == STUNErrorCode.addressFamilyNotSupported
        {
            // By name: a coturn whose default family is the client's (allocation-default-address-family=keep)
            // would answer an unnamed request with 440 again.
            return (try await client.allocate(family: .ipv4, deadline: deadline, naming: true), true)
        }
    }

    private func call(caller: TURNClient, log: StepLog) async throws {
        let reflexive = try await log.step(.binding) {
            let mapped = try await Self.binding(caller, endpoint: endpoint, deadline: deadline())
            var facts = ["reflexive": mapped.description]
            var detail = "reflexive address \(mapped)"
            // The source address the kernel picks toward the server: if the server sees another, a NAT
            // rewrote it, and peers can reach this host only through what that NAT allows.
            if let local = LocalRoute.sourceAddress(toward: endpoint.address) {
                facts["local"] = local
                facts["behindNAT"] = String(local != mapped.host)
                if local != mapped.host { detail += " (behind NAT: this host is \(local))" }
            }
            return (detail, facts, mapped)
        }
        guard uri.isTURN, options.credentials != nil, reflexive != nil else { return }
        let family: TransportAddress.Family = endpoint.address.protocol == .inet6 ? .ipv6 : .ipv4
        guard
            let callerAllocation = try await log.step(
                .allocation,
                {
                    let (allocation, fallback) = try await Self.allocate(
                        caller, preferring: family, deadline: deadline())
                    let serverPrivate = (try? TransportAddress(endpoint.address))?.isPrivate ?? false
                    return (
                        "relayed address \(allocation.relayed), lifetime \(allocation.lifetime) s"
                            + (fallback
                                ? " (the server has no IPv6 relay, 440; this is an IPv4 one, as clients taking the "
                                    + "default get: give coturn relay-ip for IPv6 to offer both)" : ""),
                        [
                            "relayed": allocation.relayed.description, "lifetime": String(allocation.lifetime),
                            "relayedPrivate": String(allocation.relayed.isPrivate),
                            "serverPrivate": String(serverPrivate),
                        ],
                        allocation
                    )
                })
        else { return }
        // The callee: a second client on its own connection, as the other party of a call would be.
        try await Connector.withConnection(to: endpoint, tls: options.tls, connectTimeout: options.stepTimeout) {
            connection in
            let callee = TURNClient(connection: connection, credentials: options.credentials)
            defer { connection.setPeerDataHandler(nil) }
            let calleeAllocation: Allocation
            do {
                calleeAllocation = try await callee.allocate(
                    family: callerAllocation.relayed.family, deadline: deadline())
            } catch {
                log.fail(.permission, error, milliseconds: 0, prefix: "the second (callee) allocation failed")
                return
            }
            let permitted = try await log.step(.permission) {
                try await caller.createPermission(for: [calleeAllocation.relayed], deadline: deadline())
                try await callee.createPermission(for: [callerAllocation.relayed], deadline: deadline())
                return ("each relay permits the other's address", [:], true)
            }
            if permitted != nil {
                // Send/Data first: once a channel is bound to a peer, the server must use ChannelData for it.
                await relay(.relaySendData, .indication, caller, callee, calleeAllocation.relayed, log)
                let channel: UInt16 = 0x4000
                let bound = try await log.step(.channel) {
                    try await caller.channelBind(channel, to: calleeAllocation.relayed, deadline: deadline())
                    try await callee.channelBind(channel, to: callerAllocation.relayed, deadline: deadline())
                    return ("channel 0x4000 bound on both relays", [:], true)
                }
                if bound != nil {
                    await relay(.relayChannelData, .channel(channel), caller, callee, calleeAllocation.relayed, log)
                }
            }
            _ = try await log.step(.release) {
                try await callee.refresh(lifetime: 0, deadline: deadline())
                try await caller.refresh(lifetime: 0, deadline: deadline())
                return ("both allocations released", [:], true)
            }
        }
        await otherFamily(than: callerAllocation.relayed.family, log: log)
    }

    /// A relay of the family the call did not use, on a connection of its own (one allocation per 5-tuple):
    /// dual-stack clients ask for both (RFC 6156, RFC 8656), and a peer reaches a relay of its own family
    /// only. A server without one answers 440, which is reported as what it is, not as a failure.
    private func otherFamily(than family: TransportAddress.Family, log: StepLog) async {
        let other: TransportAddress.Family = family == .ipv4 ? .ipv6 : .ipv4
        let name = other == .ipv6 ? "IPv6" : "IPv4"
        let start = ContinuousClock.now
        func skip(_ detail: String, _ facts: [String: String] = [:]) {
            log.append(
                StepReport(
                    step: .otherFamily, status: .skip, milliseconds: milliseconds(.now - start), detail: detail,
                    facts: facts.merging(["family": name]) { mine, _ in mine }))
        }
        guard asksOtherFamily else {
            skip("not run here: the relay families are asked on this host's UDP URI")
            return
        }
        // coturn counts a released allocation for about a second: the call's two may still hold the quota.
        for attempt in 1...3 {
            do {
                try await Connector.withConnection(
                    to: endpoint, tls: options.tls, connectTimeout: options.stepTimeout
                ) { connection in
                    let client = TURNClient(connection: connection, credentials: options.credentials)
                    let allocation = try await client.allocate(family: other, deadline: deadline(), naming: true)
                    _ = try? await client.refresh(lifetime: 0, deadline: deadline())
                    log.append(
                        StepReport(
                            step: .otherFamily, status: .pass, milliseconds: milliseconds(.now - start),
                            detail: "an \(name) relay too: \(allocation.relayed) (released)",
                            facts: ["family": name, "relayed": allocation.relayed.description]))
                }
                return
            } catch let error as TURNClientError where error.errorCode == STUNErrorCode.addressFamilyNotSupported {
                skip(
                    "no \(name) relay (440): this server relays \(family == .ipv4 ? "IPv4" : "IPv6") only, so a peer "
                        + "with only an \(name) address cannot be reached through it; coturn offers both with a "
                        + "relay-ip of each family",
                    ["errorCode": "440"])
                return
            } catch let error as TURNClientError
                where [STUNErrorCode.allocationQuotaReached, STUNErrorCode.insufficientCapacity].contains(
                    error.errorCode ?? 0)
            {
                guard attempt < 3 else {
                    skip(
                        "not tested: the server refused a third allocation (\(error.errorCode ?? 0)) while this "
                            + "probe's own were held or just released; probe this URI alone to ask",
                        ["errorCode": String(error.errorCode ?? 0)])
                    return
                }
                try? await Pause.for(.seconds(1))
            } catch let error as TURNClientError {
                if case .credentialsRejected = error.kind {
                    // The call's allocation took these credentials: by now they expired or their secret retired.
                    skip(
                        "not tested: the credentials were refused by then (they expired, or their secret was "
                            + "retired, since the call's allocation took them)")
                } else {
                    log.fail(.otherFamily, error, milliseconds: milliseconds(.now - start), prefix: "the \(name) relay")
                }
                return
            } catch {
                log.fail(.otherFamily, error, milliseconds: milliseconds(.now - start), prefix: "the \(name) relay")
                return
            }
        }
    }

    private func relay(
        _ name: StepReport.Name,
        _ path: RelayExchange.Path,
        _ caller: TURNClient,
        _ callee: TURNClient,
        _ calleeRelay: TransportAddress,
        _ log: StepLog
    ) async {
        let start = ContinuousClock.now
        let result = await RelayExchange(
            caller: caller,
            callee: callee,
            calleeRelay: calleeRelay,
            path: path,
            packets: options.packets,
            size: options.packetSize
        ).run(deadline: deadline())
        let elapsed = milliseconds(.now - start)
        var facts = [
            "sent": String(result.sent), "received": String(result.received), "lossPercent": String(result.lossPercent),
        ]
        var detail = "\(result.received)/\(result.sent) packets of \(options.packetSize) bytes came back"
        if let stats = result.rtt {
            facts["rttMinMs"] = String(stats.min)
            facts["rttMedianMs"] = String(stats.median)
            facts["rttMaxMs"] = String(stats.max)
            detail += ", RTT min/median/max \(stats.min)/\(stats.median)/\(stats.max) ms"
        }
        // A call survives some loss; a relay that returns less than 80% of packets is broken.
        let passed = result.sent > 0 && result.lossPercent <= 20
        log.append(
            StepReport(
                step: name,
                status: passed ? .pass : .fail,
                milliseconds: elapsed,
                detail: detail,
                facts: facts,
                failure: passed ? nil : (result.received == 0 ? .relaySilent : .relayLoss)
            )
        )
    }
}

/// Collects step reports; each step is timed and its error turned into a report.
final class StepLog: Sendable {
    private let recorded = Mutex<[StepReport]>([])

    var steps: [StepReport] { recorded.withLock { $0 } }

    func append(_ step: StepReport) { recorded.withLock { $0.append(step) } }

    /// Runs `body`; on success records a pass with its detail and facts and returns its value,
    /// on a TURN failure records a fail and returns nil. Cancellation propagates.
    func step<T>(
        _ name: StepReport.Name,
        _ body: () async throws -> (String, [String: String], T)
    ) async throws -> T? {
        let start = ContinuousClock.now
        do {
            let (detail, facts, value) = try await body()
            append(
                StepReport(
                    step: name, status: .pass, milliseconds: milliseconds(.now - start), detail: detail, facts: facts))
            return value
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            fail(name, error, milliseconds: milliseconds(.now - start))
            return nil
        }
    }

    func fail(_ name: StepReport.Name, _ error: any Error, milliseconds: Double, prefix: String? = nil) {
        var facts: [String: String] = [:]
        let code: FailureCode
        if let error = error as? TURNClientError {
            code = Self.code(error.kind)
            switch error.kind {
            case .errorResponse(let response), .credentialsRejected(let response),
                .answerIntegrityMissing(let response?), .answerIntegrityInvalid(let response?):
                facts["errorCode"] = String(response.code)
            default:
                break
            }
            if let integrity = error.answerIntegrity {
                facts["answerIntegrity"] =
                    switch integrity {
                    case .valid: "valid"
                    case .absent: "missing"
                    case .invalid: "invalid"
                    }
            }
        } else {
            code = .other
        }
        // Errors may quote what a server sent; the detail is printed and put in JSON as it is.
        let detail = ServerText.escaped(prefix.map { "\($0): \(error)" } ?? "\(error)", limit: nil)
        append(
            StepReport(
                step: name, status: .fail, milliseconds: milliseconds, detail: detail, facts: facts, failure: code))
    }

    static func code(_ kind: TURNClientError.Kind) -> FailureCode {
        switch kind {
        case .timedOut: .timeout
        case .connectionRefused: .refused
        case .connectionFailed: .connectionFailed
        case .rejectedByNetwork: .rejected
        case .tlsFailed: .tls
        case .closed: .closed
        case .errorResponse(let error): .errorResponse(error.code)
        case .credentialsRejected: .credentialsRejected
        case .credentialsRequired: .credentialsRequired
        case .malformedResponse: .malformedResponse
        case .answerIntegrityMissing: .responseIntegrityMissing
        case .answerIntegrityInvalid: .responseIntegrityInvalid
        case .protocolViolation: .protocolViolation
        }
    }
}

/// A probe configuration problem, such as an address that is not an IP address. Exit status 2.
public struct ProbeError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
