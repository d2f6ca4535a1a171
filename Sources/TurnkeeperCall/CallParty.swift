import NIOCore
import Synchronization
import TurnkeeperCore
import TurnkeeperExecution
import TurnkeeperProbe
public import TurnkeeperSTUN
public import TurnkeeperTURNClient

/// How a test call runs.
public struct CallOptions: Sendable {
    public var name: String
    public var peer: String
    /// The directory both parties share to find each other.
    public var rendezvous: String
    /// Packets a second and bytes a packet: 50 × 160 is Opus voice in 20 ms frames.
    public var rate: Int
    public var size: Int
    public var duration: Duration
    /// For setting up: allocation, finding the peer, permissions.
    public var setupTimeout: Duration
    public var maxLossPercent: Double
    public var tls: TLSOptions
    /// The relay family to ask for (REQUESTED-ADDRESS-FAMILY), or nil for the server's default, as a client
    /// that asks for none gets (IPv4 in coturn unless allocation-default-address-family says otherwise).
    public var relayFamily: TransportAddress.Family?
    /// Asked between packets: true ends the stream early (Ctrl-C). Each side then says how many packets it
    /// numbered, and the peer judges its loss against that.
    public var stopRequested: @Sendable () -> Bool
    /// How long, once the peer is done, the rest of what it numbered may take to be read.
    var drainTimeout: Duration = .seconds(2)

    public init(
        name: String, peer: String, rendezvous: String, rate: Int = 50, size: Int = 160,
        duration: Duration = .seconds(5), setupTimeout: Duration = .seconds(30), maxLossPercent: Double = 1,
        tls: TLSOptions = TLSOptions(), relayFamily: TransportAddress.Family? = nil,
        stopRequested: @escaping @Sendable () -> Bool = { false }
    ) {
        self.relayFamily = relayFamily
        self.stopRequested = stopRequested
        self.name = name
        self.peer = peer
        self.rendezvous = rendezvous
        self.rate = rate
        self.size = size
        self.duration = duration
        self.setupTimeout = setupTimeout
        self.maxLossPercent = maxLossPercent
        self.tls = tls
    }

    var packets: Int { max(1, Int(Double(rate) * duration.seconds)) }
}

/// One party of a test call, as a Matrix client behaves: it gets a relay (or only its reflexive address,
/// for the direct attempt), tells the peer where to send, and streams voice-sized packets both ways while
/// echoing the peer's, so that each side measures loss, jitter and round trips.
public enum CallParty {
    static let channel: UInt16 = 0x4000

    /// Through TURN: allocate on `uri`, permit and bind a channel to the peer's relayed address, stream.
    public static func relayed(uri: TURNURI, credentials: TURNCredentials, options: CallOptions) async -> CallReport {
        var report = CallReport(options, mode: .relayed, uri: uri.text)
        do {
            let endpoint = try await uri.endpoint()
            report.local = LocalRoute.sourceAddress(toward: endpoint.address)
            let setup = ContinuousClock.now + options.setupTimeout
            let rendezvous = Rendezvous(directory: options.rendezvous, name: options.name, peer: options.peer)
            report = try await Connector.withConnection(to: endpoint, tls: options.tls) { connection in
                var report = report
                let client = TURNClient(connection: connection, credentials: credentials)
                let allocation = try await client.allocate(
                    family: options.relayFamily ?? .ipv4, deadline: setup, naming: options.relayFamily != nil)
                report.relayed = allocation.relayed.description
                report.reflexive = allocation.mapped?.description
                try rendezvous.publish(host: allocation.relayed.host, port: allocation.relayed.port, stage: .ready)
                let card = try await rendezvous.wait(for: .ready, until: setup, stop: options.stopRequested)
                guard let address = try? SocketAddress(ipAddress: card.host, port: Int(card.port)),
                    let peer = try? TransportAddress(address)
                else {
                    throw TurnkeeperError(
                        .checkFailed, "\(options.peer) published \(ServerText.escaped(card.host)), not an IP address")
                }
                report.peerAddress = peer.description
                // A relay reaches peers of its own family only: the server would answer 443.
                guard peer.family == allocation.relayed.family else {
                    let (mine, theirs) = allocation.relayed.family == .ipv4 ? ("IPv4", "IPv6") : ("IPv6", "IPv4")
                    throw TurnkeeperError(
                        .checkFailed,
                        "this party's relay is \(mine) (\(allocation.relayed)) and \(options.peer)'s is \(theirs) "
                            + "(\(peer)): a relay reaches peers of its own family only (443 Peer Address Family "
                            + "Mismatch), so they cannot talk. Ask both for the same family (--relay-family), or give "
                            + "coturn relays of both families (relay-ip per family) and let clients take both")
                }
                // Listening before saying "bound": the peer may start streaming the moment it reads that.
                let (inbox, input) = AsyncStream.makeStream(of: PeerData.self, bufferingPolicy: .bufferingNewest(4096))
                connection.setPeerDataHandler { input.yield($0) }
                defer {
                    connection.setPeerDataHandler(nil)
                    input.finish()
                }
                try await client.createPermission(for: [peer], deadline: setup)
                try await client.channelBind(channel, to: peer, deadline: setup)
                // Only once both sides have permitted each other does media flow, or the first packets die.
                try rendezvous.publish(host: allocation.relayed.host, port: allocation.relayed.port, stage: .bound)
                _ = try await rendezvous.wait(for: .bound, until: setup, stop: options.stopRequested)

                let tally = MediaTally()
                let streamed = await stream(
                    options: options, tally: tally, rendezvous: rendezvous,
                    host: allocation.relayed.host, port: allocation.relayed.port,
                    send: { try await client.send($0, channel: channel) },
                    inbound: inbox.map { ($0.data, $0.receivedAt) }
                )
                report.finish(streamed, tally: tally, options: options)
                _ = try? await client.refresh(lifetime: 0, deadline: .now + .seconds(3))
                return report
            }
        } catch {
            report.fail("\(error)")
        }
        return report
    }

    /// Without TURN: learn the reflexive address from the STUN server at `uri`, then send straight to the
    /// peer's reflexive address from the same socket (UDP hole punching).
    public static func direct(uri: TURNURI, options: CallOptions) async -> CallReport {
        var report = CallReport(options, mode: .direct, uri: uri.text)
        do {
            let endpoint = try await uri.endpoint(transport: .udp)
            report.local = LocalRoute.sourceAddress(toward: endpoint.address)
            let setup = ContinuousClock.now + options.setupTimeout
            let rendezvous = Rendezvous(directory: options.rendezvous, name: options.name, peer: options.peer)
            report = try await DatagramSocket.withSocket(server: endpoint) { socket in
                var report = report
                // STUN answers to our Binding go to its transaction; everything else the socket hears is media.
                let mapped: TransportAddress
                do {
                    mapped = try await TURNClient(connection: socket.stun, credentials: nil).binding(deadline: setup)
                } catch let error as TURNClientError where error.kind == .timedOut {
                    throw TurnkeeperError(
                        .checkFailed,
                        "the STUN server at \(endpoint.address.hostAndPort) did not answer a Binding request")
                }
                report.reflexive = mapped.description
                try rendezvous.publish(host: mapped.host, port: mapped.port, stage: .bound)
                let card = try await rendezvous.wait(for: .bound, until: setup, stop: options.stopRequested)
                let peer = try SocketAddress(ipAddress: card.host, port: Int(card.port))
                report.peerAddress = peer.hostAndPort
                let tally = MediaTally()
                let streamed = await stream(
                    options: options, tally: tally, rendezvous: rendezvous, host: mapped.host, port: mapped.port,
                    send: { try await socket.send($0, to: peer) },
                    // Only the peer's address: anyone else who learns our port could add to the count.
                    inbound: socket.received.filter { $0.from == peer }.map { ($0.bytes, $0.receivedAt) })
                report.finish(streamed, tally: tally, options: options)
                return report
            }
        } catch {
            report.fail("\(error)")
        }
        return report
    }

    /// What one side's stream did.
    struct Streamed {
        /// Packets numbered (sent or not), and those the socket took.
        var numbered: Int
        var sent: Int
        /// What the peer said it numbered, once it was done; nil when it did not say so in time.
        var peerNumbered: Int?
        /// This side stopped before its planned count: Ctrl-C here, or the peer hung up.
        var stoppedEarly: Bool
        var peerHungUp = false
    }

    /// Sends `options.packets` packets paced at `options.rate`, while counting and echoing what arrives, and
    /// says its progress in its card every second. Ctrl-C here (or the peer hanging up) ends the stream early.
    /// Then it says "done" with its count and keeps echoing until the peer is done too.
    static func stream<Inbound: AsyncSequence & Sendable>(
        options: CallOptions, tally: MediaTally, rendezvous: Rendezvous, host: String, port: UInt16,
        send: @escaping @Sendable ([UInt8]) async throws -> Void, inbound: Inbound
    ) async -> Streamed where Inbound.Element == ([UInt8], ContinuousClock.Instant) {
        let interval = Duration.seconds(1) / options.rate
        let counts = StreamCounts()
        let card = Rendezvous.Card(host: host, port: port, stage: .streaming)
        return await withTaskGroup(of: Void.self) { group in
            group.addTask {
                do {
                    for try await (bytes, _) in inbound {
                        guard let packet = MediaPacket.parse(bytes) else { continue }
                        let now = MediaPacket.now()
                        if packet.echo {
                            tally.echoed(sentNanos: packet.sentNanos, arrivedNanos: now)
                        } else {
                            tally.received(sequence: packet.sequence, sentNanos: packet.sentNanos, arrivedNanos: now)
                            try? await send(MediaPacket.echoing(bytes))
                        }
                    }
                } catch {}
            }
            // Progress, for whoever watches the call, and the peer's hang-up, once a second.
            let progress = Task {
                while !Task.isCancelled {
                    var progress = card
                    progress.packets = counts.numbered.load(ordering: .relaxed)
                    progress.received = tally.receivedCount
                    let now = progress
                    let peer = try? await Blocking.run { () throws -> Rendezvous.Card? in
                        try rendezvous.publish(now)
                        return rendezvous.peerCard()
                    }
                    if let peer = peer ?? nil, peer.stage == .done, peer.hungUp == true {
                        counts.peerHungUp.store(true, ordering: .relaxed)
                    }
                    try? await Pause.for(.seconds(1))
                }
            }
            let start = ContinuousClock.now
            var numbered = 0
            var stoppedEarly = false
            while numbered < options.packets {
                try? await Pause.until(start + interval * numbered)
                if options.stopRequested() || counts.peerHungUp.load(ordering: .relaxed) {
                    stoppedEarly = true
                    break
                }
                let packet = MediaPacket.make(
                    sequence: UInt32(numbered), sentNanos: MediaPacket.now(), size: options.size)
                numbered += 1
                counts.numbered.store(numbered, ordering: .relaxed)
                if (try? await send(packet)) != nil { counts.sent.add(1, ordering: .relaxed) }
            }
            progress.cancel()
            await progress.value
            var done = card
            done.stage = .done
            done.packets = numbered
            done.received = tally.receivedCount
            done.hungUp = stoppedEarly && !counts.peerHungUp.load(ordering: .relaxed) ? true : nil
            try? rendezvous.publish(done)
            // Echo the peer's tail until it is done too (a side that hung up waits only `drainTimeout`: the peer
            // stops within a second of reading that), then read until all it numbered has arrived: on a busy
            // machine that tail can sit unread for a while (with two CPU hogs, a fixed 500 ms made a 2 s direct
            // call between two un-NATed hosts report 18% lost). What never arrives is waited for `drainTimeout`.
            let waitForPeer = stoppedEarly ? options.drainTimeout : options.setupTimeout
            let peer = try? await rendezvous.wait(for: .done, until: .now + waitForPeer)
            let drained = ContinuousClock.now + options.drainTimeout
            if let numbered = peer?.packets {
                while tally.receivedCount < numbered && ContinuousClock.now < drained {
                    try? await Pause.for(.milliseconds(10))
                }
            } else {
                try? await Pause.for(.milliseconds(500))
            }
            group.cancelAll()
            return Streamed(
                numbered: numbered, sent: counts.sent.load(ordering: .relaxed), peerNumbered: peer?.packets,
                stoppedEarly: stoppedEarly, peerHungUp: counts.peerHungUp.load(ordering: .relaxed))
        }
    }
}

/// What the stream, its progress task and its reader share.
private final class StreamCounts: Sendable {
    let numbered = Atomic<Int>(0)
    let sent = Atomic<Int>(0)
    let peerHungUp = Atomic<Bool>(false)
}

extension CallReport {
    init(_ options: CallOptions, mode: Mode, uri: String) {
        self.init(
            name: options.name, peer: options.peer, mode: mode, uri: uri, sent: 0, received: 0,
            expected: options.packets, lossPercent: 100, passed: false)
    }

    mutating func finish(_ streamed: CallParty.Streamed, tally: MediaTally, options: CallOptions) {
        let summary = tally.summary
        sent = streamed.sent
        received = summary.received
        // The peer's own count when it gave one (a call stopped early numbers fewer than planned), but never
        // fewer than the highest sequence that arrived shows it sent. A side that hung up while the peer still
        // sent judges what the peer sent up to the last packet that arrived.
        if let peerNumbered = streamed.peerNumbered {
            expected = max(peerNumbered, tally.leastNumbered, 1)
        } else if streamed.stoppedEarly {
            expected = max(tally.leastNumbered, 1)
        }
        if streamed.stoppedEarly { stoppedEarly = true }
        lossPercent = (Double(expected - min(received, expected)) / Double(expected) * 100).rounded(toPlaces: 2)
        rttMilliseconds = summary.rtt
        jitterMilliseconds = summary.jitter
        passed = lossPercent < options.maxLossPercent
        if !passed {
            problem =
                if streamed.peerNumbered == 0 {
                    "\(peer) hung up before sending anything: nothing could be judged"
                } else if received == 0 {
                    "nothing of \(peer)'s stream arrived: there is no path between the two"
                } else {
                    "\(lossPercent)% of \(peer)'s stream was lost (the limit is \(options.maxLossPercent)%)"
                }
        }
    }

    /// `reason` may quote the server or the peer's card: it is escaped before it is printed or put in JSON.
    mutating func fail(_ reason: String) {
        passed = false
        problem = ServerText.escaped(reason, limit: nil)
    }
}
