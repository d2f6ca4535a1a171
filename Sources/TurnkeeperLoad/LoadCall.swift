import TurnkeeperCore
import TurnkeeperExecution
import TurnkeeperProbe
import TurnkeeperSTUN
import TurnkeeperTURNClient

/// One call of a load run: two connections, two allocations relaying to each other over a channel, paced
/// traffic both ways, kept alive until the run stops, then released.
enum LoadCall {
    static let channel: UInt16 = 0x4000

    static func run(
        _ index: Int, endpoint: ServerEndpoint, options: LoadOptions, tally: LoadTally, pacer: MediaPacer,
        stop: @escaping @Sendable () -> Bool
    ) async {
        let began = ContinuousClock.now
        // One deadline for the whole setup, connects and a retry included: --timeout bounds it.
        let deadline = began + options.setupTimeout
        // A 437 (allocation mismatch) to an Allocate means the server still holds an allocation on this 5-tuple:
        // coturn does for a while after a release when a new socket draws the same local port. RFC 8656 §7.2: try
        // again from another local port. Once: a second 437 is the server's answer.
        var attempt = 0
        while true {
            attempt += 1
            do {
                try await setUp(
                    index, endpoint: endpoint, options: options, tally: tally, pacer: pacer, stop: stop, began: began,
                    deadline: deadline)
                return
            } catch let error as TURNClientError {
                if attempt == 1, error.method == .allocate, case .errorResponse(let response) = error.kind,
                    response.code == 437, !stop()
                {
                    tally.retried(code(of: error))
                    continue
                }
                tally.refused(code(of: error), reason: error.description)
            } catch {
                tally.refused("error", reason: "\(type(of: error))")
            }
            return
        }
    }

    /// One attempt: both connections and allocations, their permissions and channels, then traffic until the
    /// run stops, then the release. Throws only what happened before the call came up.
    private static func setUp(
        _ index: Int, endpoint: ServerEndpoint, options: LoadOptions, tally: LoadTally, pacer: MediaPacer,
        stop: @escaping @Sendable () -> Bool, began: ContinuousClock.Instant, deadline: ContinuousClock.Instant
    ) async throws {
        let credentials = options.credentials(index)
        let family: TransportAddress.Family = endpoint.address.protocol == .inet6 ? .ipv6 : .ipv4
        func remaining() -> Duration { max(.milliseconds(1), deadline - .now) }
        // Each connection on the next event loop in turn: a load's calls share every core.
        try await Connector.withConnection(
            to: endpoint, tls: options.tls, connectTimeout: remaining(), spread: true
        ) { caller in
            try await Connector.withConnection(
                to: endpoint, tls: options.tls, connectTimeout: remaining(), spread: true
            ) { callee in
                let a = TURNClient(connection: caller, credentials: credentials)
                let b = TURNClient(connection: callee, credentials: credentials)
                // A UDP allocation outlives its socket: whatever was allocated is released, awaited, however
                // the call ends.
                // The URI's family, or the default IPv4 relay where the server has no IPv6 one (440).
                let relayA = try await TargetProbe.allocate(a, preferring: family, deadline: deadline).0
                let relayB: Allocation
                do {
                    relayB = try await b.allocate(family: relayA.relayed.family, deadline: deadline, naming: true)
                } catch {
                    await release([a], tally: tally)
                    throw error
                }
                do {
                    try await a.createPermission(for: [relayB.relayed], deadline: deadline)
                    try await b.createPermission(for: [relayA.relayed], deadline: deadline)
                    try await a.channelBind(channel, to: relayB.relayed, deadline: deadline)
                    try await b.channelBind(channel, to: relayA.relayed, deadline: deadline)
                } catch {
                    await release([a, b], tally: tally)
                    throw error
                }
                tally.up(setup: (ContinuousClock.now - began).seconds * 1000)
                let streams = (index * 2, index * 2 + 1)
                caller.setMediaSink(StreamSink(stream: streams.1, tally: tally))
                callee.setMediaSink(StreamSink(stream: streams.0, tally: tally))
                try? pacer.start(stream: streams.0, on: caller, channel: channel)
                try? pacer.start(stream: streams.1, on: callee, channel: channel)
                let lifetime = min(granted(relayA.lifetime), granted(relayB.lifetime))
                await keepAlive(
                    [(a, relayB.relayed), (b, relayA.relayed)], lifetime: lifetime, since: began,
                    options: options, tally: tally, stop: stop)
                pacer.stop(stream: streams.0)
                pacer.stop(stream: streams.1)
                await release([a, b], tally: tally)
            }
        }
    }

    /// The lifetime a server granted, in seconds. A server that sends none (or 0) is taken at RFC 8656's default
    /// of 10 minutes: a client must never answer it with a Refresh of 0, which would release the allocation.
    static func granted(_ lifetime: UInt32) -> Int {
        lifetime == 0 ? 600 : Int(min(lifetime, 3600))
    }

    /// When to refresh an allocation of `lifetime` seconds: a minute before it ends, as browsers do, or half-way
    /// through a short one.
    static func refreshAfter(lifetime: Int) -> Duration {
        .seconds(max(1, lifetime > 120 ? lifetime - 60 : lifetime / 2))
    }

    static func code(of error: TURNClientError) -> String {
        switch error.kind {
        case .errorResponse(let code), .credentialsRejected(let code): "\(code.code)"
        case .timedOut: "timeout"
        default: "error"
        }
    }

    /// One side's refresh times: its allocation's lifetime as last granted, and when each renewal is due.
    struct Schedule {
        var lifetime: Int
        var allocation: ContinuousClock.Instant
        var permission: ContinuousClock.Instant
        var channel: ContinuousClock.Instant
    }

    /// A failed renewal is tried again this soon (or sooner, within a short period), not a period later.
    static let retry: Duration = .seconds(5)

    /// Until the run stops or a connection ends: each side's allocation refreshed before its lifetime ends
    /// (rescheduled from the lifetime each refresh grants), its permission and channel renewed as browsers
    /// renew them. The schedule counts from the setup's start, so nothing granted during setup lapses. Each
    /// request has its own deadline and the run's stop is checked before each; a failure is counted by its code
    /// and retried soon.
    static func keepAlive(
        _ sides: [(client: TURNClient, peer: TransportAddress)], lifetime: Int, since began: ContinuousClock.Instant,
        options: LoadOptions, tally: LoadTally, stop: @escaping @Sendable () -> Bool
    ) async {
        var schedules = sides.map { _ in
            Schedule(
                lifetime: lifetime, allocation: began + refreshAfter(lifetime: lifetime),
                permission: began + options.permissionRefresh, channel: began + options.channelRefresh)
        }
        func failed(_ error: any Error) {
            if let error = error as? TURNClientError {
                tally.refreshFailed(code(of: error), reason: error.description)
            } else {
                tally.refreshFailed("error", reason: "\(type(of: error))")
            }
        }
        while !stop() {
            if let ended = sides.lazy.compactMap({ $0.client.connection.ended }).first {
                tally.dropped(code(of: ended), reason: ended.description)
                return
            }
            let due = schedules.map { min($0.allocation, $0.permission, $0.channel) }.min() ?? .now
            try? await Pause.until(min(due, .now + .milliseconds(500)))
            for (index, side) in sides.enumerated() {
                if stop() { return }
                if ContinuousClock.now >= schedules[index].allocation {
                    let requested = schedules[index].lifetime
                    do {
                        let granted = granted(
                            try await side.client.refresh(
                                lifetime: UInt32(requested), deadline: .now + options.setupTimeout))
                        schedules[index].lifetime = granted
                        schedules[index].allocation = .now + refreshAfter(lifetime: granted)
                    } catch {
                        failed(error)
                        schedules[index].allocation = .now + min(retry, refreshAfter(lifetime: requested))
                    }
                }
                if stop() { return }
                if ContinuousClock.now >= schedules[index].permission {
                    do {
                        try await side.client.createPermission(
                            for: [side.peer], deadline: .now + options.setupTimeout)
                        schedules[index].permission = .now + options.permissionRefresh
                    } catch {
                        failed(error)
                        schedules[index].permission = .now + min(retry, options.permissionRefresh)
                    }
                }
                if stop() { return }
                if ContinuousClock.now >= schedules[index].channel {
                    do {
                        try await side.client.channelBind(channel, to: side.peer, deadline: .now + options.setupTimeout)
                        schedules[index].channel = .now + options.channelRefresh
                    } catch {
                        failed(error)
                        schedules[index].channel = .now + min(retry, options.channelRefresh)
                    }
                }
            }
        }
    }

    /// Releases allocations (a Refresh with lifetime 0), all at once, awaited. One that goes unanswered is
    /// counted: it stays on the server until its lifetime ends. An allocation whose TCP or TLS connection has
    /// ended is gone already (the server frees it with its connection), so nothing is sent for it.
    static func release(_ clients: [TURNClient], tally: LoadTally) async {
        await withTaskGroup(of: Void.self) { group in
            for client in clients
            where client.connection.ended == nil || client.connection.endpoint.transport == .udp {
                group.addTask {
                    if (try? await client.refresh(lifetime: 0, deadline: .now + .seconds(2))) == nil {
                        tally.releaseUnconfirmed()
                    }
                }
            }
        }
    }
}
