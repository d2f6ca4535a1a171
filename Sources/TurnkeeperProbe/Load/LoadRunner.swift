import Glibc
import Synchronization
import TurnkeeperCore
import TurnkeeperExecution
import TurnkeeperSTUN
public import TurnkeeperTURNClient

/// What `turnkeeper load` is given.
public struct LoadOptions: Sendable {
    /// A credential per call (minted for its own user, so that a per-user quota meets one call's two
    /// allocations), or the same one for every call.
    public var credentials: @Sendable (Int) -> TURNCredentials
    public var tls: TLSOptions
    /// The number of calls at each step.
    public var steps: [Int]
    public var stepDuration: Duration
    /// Voice: 50 packets a second of 160 bytes, each way.
    public var packetsPerSecond: Int
    public var packetSize: Int
    public var thresholds: LoadThresholds
    public var coturnPID: Int32?
    public var setupTimeout: Duration

    public init(
        credentials: @escaping @Sendable (Int) -> TURNCredentials, tls: TLSOptions = TLSOptions(), steps: [Int],
        stepDuration: Duration, packetsPerSecond: Int = 50, packetSize: Int = 160,
        thresholds: LoadThresholds = LoadThresholds(), coturnPID: Int32? = nil, setupTimeout: Duration = .seconds(5)
    ) {
        self.credentials = credentials
        self.tls = tls
        self.steps = steps
        self.stepDuration = stepDuration
        self.packetsPerSecond = packetsPerSecond
        self.packetSize = packetSize
        self.thresholds = thresholds
        self.coturnPID = coturnPID
        self.setupTimeout = setupTimeout
    }
}

/// Two-party calls through one TURN server, each two allocations relaying to each other over channels as
/// calls do, with paced voice-sized traffic both ways. The ramp adds calls step by step and keeps the earlier
/// ones running, as a server's load grows; each step is measured over its own window once its new calls are up.
/// Every allocation is released at the end (or on Ctrl-C). The only peers are the run's own relays.
public enum LoadRunner {
    public static func run(
        _ uri: TURNURI, endpoint: ServerEndpoint, options: LoadOptions, shouldStop: @escaping @Sendable () -> Bool
    ) async -> LoadReport {
        let tally = LoadTally(calls: options.steps.max() ?? 1)
        let finished = Atomic<Bool>(false)
        let stop: @Sendable () -> Bool = { finished.load(ordering: .relaxed) || shouldStop() }
        var steps: [LoadStep] = []
        var limit: (check: String, words: String)?
        await withTaskGroup(of: Void.self) { group in
            var started = 0
            for calls in options.steps {
                if shouldStop() { break }
                tally.beginStep()
                for index in started..<calls {
                    group.addTask {
                        await runCall(index, endpoint: endpoint, options: options, tally: tally, stop: stop)
                    }
                }
                started = calls
                // The step's window opens once every call has come up or been refused (an event, polled; the
                // setup timeout bounds it).
                let settle = ContinuousClock.now + options.setupTimeout + .seconds(2)
                while tally.settled < calls && ContinuousClock.now < settle && !shouldStop() {
                    try? await Pause.for(.milliseconds(50))
                }
                tally.openWindow()
                let cpuBefore = processCPUSeconds()
                let coturnBefore = options.coturnPID.flatMap(coturnCPUSeconds)
                let windowStart = ContinuousClock.now
                try? await Pause.for(options.stepDuration)
                let wall = (ContinuousClock.now - windowStart).seconds
                let coturnCPU = options.coturnPID.flatMap(coturnCPUSeconds).flatMap { after in
                    coturnBefore.map { (after - $0) / wall * 100 }
                }
                let step = tally.closeWindow(
                    calls: calls, seconds: wall, packetSize: options.packetSize,
                    clientCPUPercent: (processCPUSeconds() - cpuBefore) / wall * 100, coturnCPUPercent: coturnCPU,
                    coturnResidentBytes: options.coturnPID.flatMap(coturnResidentBytes))
                steps.append(step)
                if let reason = judge(step, options: options) {
                    limit = reason
                    break
                }
            }
            finished.store(true, ordering: .relaxed)
        }
        return LoadReport(
            uri: uri.text, profile: "voice", stepSeconds: Double(options.stepDuration.components.seconds),
            steps: steps, limit: limit?.words, limitCheck: limit?.check,
            notTested: [
                "video-shaped traffic (bursts of frames)",
                "allocation and permission refreshes (a run is bounded to under 5 minutes)",
            ])
    }

    /// The limit a step hit, in words with the coturn option that governs it, or nil when it carried its calls.
    static func judge(_ step: LoadStep, options: LoadOptions) -> (check: String, words: String)? {
        if let count = step.refusals["486"], count > 0 {
            return (
                "allocation-quota",
                "At \(step.calls) calls coturn refused \(count) allocation(s) with 486 (allocation quota reached): "
                    + "user-quota (allocations per username) or total-quota governs it. Raise them in "
                    + "turnserver.conf if this host should carry more."
            )
        }
        if let count = step.refusals["508"], count > 0 {
            return (
                "relay-capacity",
                "At \(step.calls) calls coturn refused \(count) allocation(s) with 508 (insufficient capacity): the "
                    + "relay port range (min-port..max-port, two ports a call) or total-quota is exhausted."
            )
        }
        if step.lossPercent > options.thresholds.lossPercent {
            return (
                "loss",
                "At \(step.calls) calls \(step.lossPercent)% of packets were lost (threshold "
                    + "\(options.thresholds.lossPercent)%): if coturn sets bps-capacity or max-bps, they cap the "
                    + "bandwidth; otherwise the host's CPU or network is the limit (see coturn's CPU)."
            )
        }
        if let jitter = step.jitterMs, jitter.p99 > options.thresholds.jitterMs {
            return (
                "jitter",
                "At \(step.calls) calls jitter p99 reached \(jitter.p99) ms (threshold "
                    + "\(options.thresholds.jitterMs) ms): the relay falls behind; coturn's CPU shows whether it "
                    + "is the limit."
            )
        }
        if let transit = step.transitMs, transit.p99 > options.thresholds.transitMs {
            return (
                "transit",
                "At \(step.calls) calls one-way transit p99 reached \(transit.p99) ms (threshold "
                    + "\(options.thresholds.transitMs) ms, ITU-T G.114's limit for conversation): packets queue "
                    + "in the relay or in this client; the CPU columns say which."
            )
        }
        if let count = step.refusals["timeout"], count > 0 {
            return (
                "setup-timeout",
                "At \(step.calls) calls \(count) call(s) did not come up within the setup timeout: the server (or "
                    + "this client: see the CPU columns) no longer keeps up."
            )
        }
        if let other = step.refusals.sorted(by: { $0.key < $1.key }).first(where: { $0.value > 0 }) {
            return (
                "refused",
                "At \(step.calls) calls \(other.value) call(s) did not come up (\(other.key)); coturn's log says "
                    + "why."
            )
        }
        if let setup = step.setupMs, setup.p99 > options.thresholds.setupMs {
            return (
                "setup",
                "At \(step.calls) calls allocation setup p99 reached \(setup.p99) ms (threshold "
                    + "\(options.thresholds.setupMs) ms)."
            )
        }
        return nil
    }

    static func runCall(
        _ index: Int, endpoint: ServerEndpoint, options: LoadOptions, tally: LoadTally,
        stop: @escaping @Sendable () -> Bool
    ) async {
        let credentials = options.credentials(index)
        let family: TransportAddress.Family = endpoint.address.protocol == .inet6 ? .ipv6 : .ipv4
        do {
            try await Connector.withConnection(to: endpoint, tls: options.tls) { caller in
                try await Connector.withConnection(to: endpoint, tls: options.tls) { callee in
                    let a = TURNClient(connection: caller, credentials: credentials)
                    let b = TURNClient(connection: callee, credentials: credentials)
                    let deadline = ContinuousClock.now + options.setupTimeout
                    let began = ContinuousClock.now
                    let relayA = try await a.allocate(family: family, deadline: deadline)
                    // Released however the call ends: a UDP allocation outlives its socket.
                    var holding = [a]
                    defer {
                        for client in holding {
                            Task { _ = try? await client.refresh(lifetime: 0, deadline: .now + .seconds(2)) }
                        }
                    }
                    let relayB = try await b.allocate(family: family, deadline: deadline)
                    holding.append(b)
                    try await a.createPermission(for: [relayB.relayed], deadline: deadline)
                    try await b.createPermission(for: [relayA.relayed], deadline: deadline)
                    try await a.channelBind(0x4000, to: relayB.relayed, deadline: deadline)
                    try await b.channelBind(0x4000, to: relayA.relayed, deadline: deadline)
                    tally.up(setup: (ContinuousClock.now - began).seconds * 1000)
                    caller.setPeerDataHandler { tally.received($0.data, stream: index * 2 + 1) }
                    callee.setPeerDataHandler { tally.received($0.data, stream: index * 2) }
                    try await stream(a, b, index: index, options: options, tally: tally, stop: stop)
                    holding.removeAll()
                    _ = try? await a.refresh(lifetime: 0, deadline: .now + .seconds(2))
                    _ = try? await b.refresh(lifetime: 0, deadline: .now + .seconds(2))
                }
            }
        } catch let error as TURNClientError {
            switch error.kind {
            case .errorResponse(let code), .credentialsRejected(let code): tally.refused("\(code.code)")
            case .timedOut: tally.refused("timeout")
            default: tally.refused("error")
            }
        } catch {
            tally.refused("error")
        }
    }

    /// Both directions at `packetsPerSecond`, each packet due at start + n × interval: no drift however late
    /// one send is. A late send goes at once; none is skipped.
    static func stream(
        _ a: TURNClient, _ b: TURNClient, index: Int, options: LoadOptions, tally: LoadTally,
        stop: @escaping @Sendable () -> Bool
    ) async throws {
        let interval = Duration.seconds(1) / options.packetsPerSecond
        var sequence: UInt32 = 0
        var due = ContinuousClock.now
        let streams = (index * 2, index * 2 + 1)
        while !stop() {
            let packet = CallPacket.make(sequence: sequence, sentNanos: monotonicNanos(), size: options.packetSize)
            try? await a.send(packet, channel: 0x4000)
            try? await b.send(packet, channel: 0x4000)
            tally.sent(streams.0, streams.1)
            sequence &+= 1
            due += interval
            try await Pause.until(due)
        }
    }

    static func processCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
            + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }

    /// utime + stime of a process, from /proc/PID/stat (fields 14 and 15, after the command in parentheses).
    static func coturnCPUSeconds(_ pid: Int32) -> Double? {
        guard let file = try? FileContents.read("/proc/\(pid)/stat", limit: 4096),
            case let text = String(decoding: file.bytes, as: UTF8.self),
            let close = text.lastIndex(of: ")")
        else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    static func coturnResidentBytes(_ pid: Int32) -> Int? {
        guard let file = try? FileContents.read("/proc/\(pid)/status", limit: 16384),
            case let text = String(decoding: file.bytes, as: UTF8.self),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
        else { return nil }
        return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }.map { $0 * 1024 }
    }
}
