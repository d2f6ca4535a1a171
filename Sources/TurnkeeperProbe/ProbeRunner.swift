import NIOCore
import Synchronization
import TurnkeeperCore
import TurnkeeperSTUN
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
        await withTaskGroup(of: [(Int, TargetReport)].self) { group in
            var pending = uris.prefix(maximumURIs).enumerated().makeIterator()
            for _ in 0..<concurrentURIs {
                guard let (index, uri) = pending.next() else { break }
                group.addTask { await probe(uri, options: options).map { (index, $0) } }
            }
            var reports: [(Int, TargetReport)] = []
            for await batch in group {
                reports += batch
                if let (index, uri) = pending.next() {
                    group.addTask { await probe(uri, options: options).map { (index, $0) } }
                }
            }
            return reports.sorted { $0.0 < $1.0 }.map(\.1)
        }
    }

    static func probe(_ uri: TURNURI, options: ProbeOptions) async -> [TargetReport] {
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
                failure: "resolve"
            )
            return [TargetReport(uri: uri.text, transport: uri.transport.rawValue, address: uri.host, steps: [step])]
        }
        return await withTaskGroup(of: (Int, TargetReport).self) { group in
            for (index, endpoint) in endpoints.prefix(maximumAddresses).enumerated() {
                group.addTask { (index, await TargetProbe(uri: uri, endpoint: endpoint, options: options).run()) }
            }
            var reports: [(Int, TargetReport)] = []
            for await report in group { reports.append(report) }
            return reports.sorted { $0.0 < $1.0 }.map(\.1)
        }
    }
}

extension TransportAddress {
    /// The same address in STUN's terms, to reuse its classification (private, loopback).
    init(_ address: SocketAddress) throws {
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

func milliseconds(_ duration: Duration) -> Double {
    let (seconds, attoseconds) = duration.components
    return (Double(seconds) * 1000 + Double(attoseconds) / 1e15).rounded(toPlaces: 3)
}

extension Double {
    func rounded(toPlaces places: Int) -> Double {
        var scale = 1.0
        for _ in 0..<places { scale *= 10 }
        return (self * scale).rounded() / scale
    }
}

/// The steps against one address: binding; then, for TURN, a call between two relays.
struct TargetProbe {
    let uri: TURNURI
    let endpoint: ServerEndpoint
    let options: ProbeOptions

    /// The steps in order; those not reached are reported as skipped.
    private static let turnSteps: [StepReport.Name] = [
        .allocation, .permission, .relaySendData, .channel, .relayChannelData, .release,
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
        return TargetReport(
            uri: uri.text, transport: endpoint.transport.rawValue, address: endpoint.address.hostAndPort, steps: steps)
    }

    private func deadline() -> ContinuousClock.Instant { .now + options.stepTimeout }

    /// A relay of `family`, as a client over that family asks; a server without one (440 to an IPv6 request)
    /// gets the default IPv4 request next, as clients taking the default family make. True when it fell back.
    static func allocate(
        _ client: TURNClient, preferring family: TransportAddress.Family, deadline: ContinuousClock.Instant
    )
        async throws -> (Allocation, fallback: Bool)
    {
        do {
            return (try await client.allocate(family: family, deadline: deadline), false)
        } catch let error as TURNClientError
            where family == .ipv6 && error.errorCode == STUNErrorCode.addressFamilyNotSupported
        {
            return (try await client.allocate(family: .ipv4, deadline: deadline), true)
        }
    }

    private func call(caller: TURNClient, log: StepLog) async throws {
        let reflexive = try await log.step(.binding) {
            let mapped = try await caller.binding(deadline: deadline())
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
                                ? " (the server has no IPv6 relay, 440; this is the IPv4 one clients taking the "
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
                failure: passed ? nil : (result.received == 0 ? "relay-silent" : "relay-loss")
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
        let code: String
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
            code = "error"
        }
        // Errors may quote what a server sent; the detail is printed and put in JSON as it is.
        let detail = ServerText.escaped(prefix.map { "\($0): \(error)" } ?? "\(error)", limit: nil)
        append(
            StepReport(
                step: name, status: .fail, milliseconds: milliseconds, detail: detail, facts: facts, failure: code))
    }

    static func code(_ kind: TURNClientError.Kind) -> String {
        switch kind {
        case .timedOut: "timeout"
        case .connectionRefused: "refused"
        case .connectionFailed: "connection-failed"
        case .tlsFailed: "tls"
        case .closed: "closed"
        case .errorResponse(let error): "error-\(error.code)"
        case .credentialsRejected: "credentials-rejected"
        case .credentialsRequired: "credentials-required"
        case .malformedResponse: "malformed-response"
        case .answerIntegrityMissing: "response-integrity-missing"
        case .answerIntegrityInvalid: "response-integrity-invalid"
        case .protocolViolation: "protocol-violation"
        }
    }
}

/// A probe configuration problem, such as an address that is not an IP address. Exit status 2.
public struct ProbeError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
