import Glibc
import Synchronization
import TurnkeeperCore
import TurnkeeperExecution
import TurnkeeperSTUN
public import TurnkeeperTURNClient

/// Where one stream's packets arrive: read in place on the event loop, counted in the tally.
final class StreamSink: MediaSink {
    let stream: Int
    let tally: LoadTally

    init(stream: Int, tally: LoadTally) {
        self.stream = stream
        self.tally = tally
    }

    func received(channel: UInt16, payload: UnsafeRawBufferPointer) {
        tally.received(payload, stream: stream)
    }
}

/// What `turnkeeper load` is given.
public struct LoadOptions: Sendable {
    /// A credential per call (minted for its own user, so that a per-user quota meets one call's two
    /// allocations), or the same one for every call.
    public var credentials: @Sendable (Int) -> TURNCredentials
    public var tls: TLSOptions
    /// The number of calls at each step.
    public var steps: [Int]
    public var stepDuration: Duration
    public var profile: LoadProfile
    public var thresholds: LoadThresholds
    public var coturnPID: Int32?
    public var setupTimeout: Duration
    /// How often a call renews its permissions (RFC 8656: they last 5 minutes) and its channel bindings (10
    /// minutes), as browsers do. Allocations are refreshed a minute before the lifetime the server granted.
    public var permissionRefresh: Duration
    public var channelRefresh: Duration

    public init(
        credentials: @escaping @Sendable (Int) -> TURNCredentials, tls: TLSOptions = TLSOptions(), steps: [Int],
        stepDuration: Duration, profile: LoadProfile = .voice, thresholds: LoadThresholds = LoadThresholds(),
        coturnPID: Int32? = nil, setupTimeout: Duration = .seconds(5), permissionRefresh: Duration = .seconds(240),
        channelRefresh: Duration = .seconds(540)
    ) {
        self.credentials = credentials
        self.tls = tls
        self.steps = steps
        self.stepDuration = stepDuration
        self.profile = profile
        self.thresholds = thresholds
        self.coturnPID = coturnPID
        self.setupTimeout = setupTimeout
        self.permissionRefresh = permissionRefresh
        self.channelRefresh = channelRefresh
    }
}

/// Two-party calls through one TURN server, each two allocations relaying to each other over channels as
/// calls do, with paced call-shaped traffic both ways (``MediaPacer``: one timer an event loop, nothing
/// allocated per packet). Calls refresh their allocations, permissions and channels as browsers do. The ramp
/// adds calls step by step and keeps the earlier ones running, as a server's load grows; each step is measured
/// over its own window once its new calls are up. Every allocation is released at the end (or on Ctrl-C). The
/// only peers are the run's own relays.
public enum LoadRunner {
    public static func run(
        _ uri: TURNURI, endpoint: ServerEndpoint, options: LoadOptions, shouldStop: @escaping @Sendable () -> Bool
    ) async -> LoadReport {
        let tally = LoadTally(calls: options.steps.max() ?? 1)
        let pacer = MediaPacer(shape: options.profile.shape, counter: tally)
        let finished = Atomic<Bool>(false)
        let stop: @Sendable () -> Bool = { finished.load(ordering: .relaxed) || shouldStop() }
        var steps: [LoadStep] = []
        var limit: Limit?
        await withTaskGroup(of: Void.self) { group in
            var started = 0
            for calls in options.steps {
                if shouldStop() { break }
                tally.beginStep()
                for index in started..<calls {
                    group.addTask {
                        await runCall(
                            index, endpoint: endpoint, options: options, tally: tally, pacer: pacer, stop: stop)
                    }
                }
                started = calls
                // The step's window opens once every call has come up or been refused (an event, polled; the
                // setup timeout bounds it).
                let settle = ContinuousClock.now + options.setupTimeout + .seconds(2)
                while tally.settled < calls && ContinuousClock.now < settle && !shouldStop() {
                    try? await Pause.for(.milliseconds(20))
                }
                if tally.settled >= calls { tally.stepSettledNow() }
                tally.openWindow()
                let cpuBefore = processCPUSeconds()
                let coturnBefore = options.coturnPID.flatMap(coturnCPUSeconds)
                let windowStart = ContinuousClock.now
                // Sliced, so that Ctrl-C ends a long step at once.
                while ContinuousClock.now < windowStart + options.stepDuration && !shouldStop() {
                    try? await Pause.until(min(windowStart + options.stepDuration, .now + .milliseconds(250)))
                }
                let wall = (ContinuousClock.now - windowStart).seconds
                let coturnCPU = options.coturnPID.flatMap(coturnCPUSeconds).flatMap { after in
                    coturnBefore.map { (after - $0) / wall * 100 }
                }
                let step = tally.closeWindow(
                    calls: calls, seconds: wall, shape: options.profile.shape,
                    clientCPUPercent: (processCPUSeconds() - cpuBefore) / wall * 100, coturnCPUPercent: coturnCPU,
                    coturnResidentBytes: options.coturnPID.flatMap(coturnResidentBytes))
                steps.append(step)
                if let reached = judge(step, thresholds: options.thresholds) {
                    limit = reached
                    break
                }
            }
            finished.store(true, ordering: .relaxed)
        }
        return LoadReport(
            uri: uri.text, profile: options.profile.description,
            stepSeconds: Double(options.stepDuration.components.seconds), steps: steps, limit: limit?.words,
            limitCheck: limit?.check,
            notTested: [
                "calls spread over several TURN servers (only the server named is loaded)",
                "audio and video in one call (a profile is one or the other)",
            ])
    }

    /// What stopped a ramp: a check's name and, in words, the coturn option that governs it.
    struct Limit: Sendable, Hashable {
        var check: String
        var words: String
    }

    /// The limit a step hit, or nil when it carried its calls. Judged in this order: a refusal explains the loss
    /// that follows it, and loss explains the jitter.
    static func judge(_ step: LoadStep, thresholds: LoadThresholds) -> Limit? {
        let at = "At \(step.calls) calls"
        let other = step.refusals.sorted { $0.key < $1.key }.first { !["486", "508", "timeout"].contains($0.key) }
        let refresh = step.refreshFailures.sorted { $0.key < $1.key }.first
        let rules: [(check: String, words: String?)] = [
            (
                "allocation-quota",
                step.refusals["486"].map {
                    "\(at) coturn refused \($0) allocation(s) with 486 (allocation quota reached): user-quota "
                        + "(allocations per username), total-quota, or bps-capacity (bandwidth already allotted "
                        + "to sessions at max-bps each) governs it. Raise them in turnserver.conf if this host "
                        + "should carry more."
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
                "refresh",
                refresh.map {
                    "\(at) \($0.value) refresh(es) of an allocation, permission or channel failed (\($0.key)): "
                        + "calls would drop mid-call; coturn's log says why."
                }
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
                    ? "\(at) this client held back \(step.packetsHeld) packet(s) because its connections' send "
                        + "buffers were full: the path to coturn, or coturn reading too slowly, is the limit "
                        + "(see coturn's CPU)." : nil
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
            ("refused", other.map { "\(at) \($0.value) call(s) did not come up (\($0.key)); coturn's log says why." }),
            (
                "setup",
                step.setupMs.flatMap { $0.p99 > thresholds.setupMs ? $0.p99 : nil }.map {
                    "\(at) allocation setup p99 reached \($0) ms (threshold \(thresholds.setupMs) ms)."
                }
            ),
        ]
        return rules.first { $0.words != nil }.map { Limit(check: $0.check, words: $0.words ?? "") }
    }

    static func runCall(
        _ index: Int, endpoint: ServerEndpoint, options: LoadOptions, tally: LoadTally, pacer: MediaPacer,
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
                    // A UDP allocation outlives its socket: whatever was allocated is released, awaited, however
                    // the call ends.
                    let relayA = try await a.allocate(family: family, deadline: deadline)
                    let relayB: Allocation
                    do {
                        relayB = try await b.allocate(family: family, deadline: deadline)
                    } catch {
                        await release([a])
                        throw error
                    }
                    do {
                        try await a.createPermission(for: [relayB.relayed], deadline: deadline)
                        try await b.createPermission(for: [relayA.relayed], deadline: deadline)
                        try await a.channelBind(channel, to: relayB.relayed, deadline: deadline)
                        try await b.channelBind(channel, to: relayA.relayed, deadline: deadline)
                    } catch {
                        await release([a, b])
                        throw error
                    }
                    tally.up(setup: (ContinuousClock.now - began).seconds * 1000)
                    let streams = (index * 2, index * 2 + 1)
                    caller.setMediaSink(StreamSink(stream: streams.1, tally: tally))
                    callee.setMediaSink(StreamSink(stream: streams.0, tally: tally))
                    try? pacer.start(stream: streams.0, on: caller, channel: channel)
                    try? pacer.start(stream: streams.1, on: callee, channel: channel)
                    await keepAlive(
                        (a, relayA, relayB.relayed), (b, relayB, relayA.relayed), options: options, tally: tally,
                        stop: stop)
                    pacer.stop(stream: streams.0)
                    pacer.stop(stream: streams.1)
                    await release([a, b])
                }
            }
        } catch let error as TURNClientError {
            tally.refused(code(of: error))
        } catch {
            tally.refused("error")
        }
    }

    static let channel: UInt16 = 0x4000

    static func code(of error: TURNClientError) -> String {
        switch error.kind {
        case .errorResponse(let code), .credentialsRejected(let code): "\(code.code)"
        case .timedOut: "timeout"
        default: "error"
        }
    }

    /// Until the run stops: allocations refreshed a minute before their lifetime ends (half-way for short
    /// ones), permissions and channels renewed as browsers renew them. Each failure is counted by its code.
    static func keepAlive(
        _ first: (client: TURNClient, allocation: Allocation, peer: TransportAddress),
        _ second: (client: TURNClient, allocation: Allocation, peer: TransportAddress), options: LoadOptions,
        tally: LoadTally, stop: @escaping @Sendable () -> Bool
    ) async {
        let lifetime = Int(min(first.allocation.lifetime, second.allocation.lifetime))
        let allocationRefresh = Duration.seconds(max(1, lifetime > 120 ? lifetime - 60 : lifetime / 2))
        let start = ContinuousClock.now
        var next = (
            allocation: start + allocationRefresh, permission: start + options.permissionRefresh,
            channel: start + options.channelRefresh
        )
        while !stop() {
            try? await Pause.until(min(next.allocation, next.permission, next.channel, .now + .milliseconds(500)))
            let now = ContinuousClock.now
            for side in [first, second] {
                let deadline = now + options.setupTimeout
                do {
                    if now >= next.allocation {
                        _ = try await side.client.refresh(lifetime: UInt32(lifetime), deadline: deadline)
                    }
                    if now >= next.permission {
                        try await side.client.createPermission(for: [side.peer], deadline: deadline)
                    }
                    if now >= next.channel {
                        try await side.client.channelBind(channel, to: side.peer, deadline: deadline)
                    }
                } catch let error as TURNClientError {
                    tally.refreshFailed(code(of: error))
                } catch {
                    tally.refreshFailed("error")
                }
            }
            if now >= next.allocation { next.allocation = now + allocationRefresh }
            if now >= next.permission { next.permission = now + options.permissionRefresh }
            if now >= next.channel { next.channel = now + options.channelRefresh }
        }
    }

    /// Releases allocations (a Refresh with lifetime 0), all at once, awaited.
    static func release(_ clients: [TURNClient]) async {
        await withTaskGroup(of: Void.self) { group in
            for client in clients {
                group.addTask { _ = try? await client.refresh(lifetime: 0, deadline: .now + .seconds(2)) }
            }
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
