import FoundationEssentials
import TurnkeeperCore
import TurnkeeperExecution
import TurnkeeperProbe

/// How the two parties of a test call find each other: each writes `NAME.json` into a shared directory
/// (atomically) and waits for the other's. A Matrix client would send the same facts in an m.call.invite.
struct Rendezvous: Sendable {
    /// How far a party has come, in order: a wait for one stage is met by any later one.
    enum Stage: String, Codable, Sendable, Comparable {
        /// Its relay (or reflexive address) is known.
        case ready
        /// It permits the peer and has bound a channel: media may flow.
        case bound
        /// It streams; its card is rewritten every second with its progress.
        case streaming
        /// It has stopped sending.
        case done

        private var order: Int {
            switch self {
            case .ready: 0
            case .bound: 1
            case .streaming: 2
            case .done: 3
            }
        }

        static func < (lhs: Stage, rhs: Stage) -> Bool { lhs.order < rhs.order }
    }

    struct Card: Codable, Sendable {
        /// Where the peer should send: our relayed address, or our reflexive one for a direct call.
        var host: String
        var port: UInt16
        var stage: Stage
        /// From "streaming" on: how many packets this side's stream has numbered, so a call stopped early is
        /// judged on what was sent. Absent before (and from versions that did not say it).
        var packets: Int?
        /// From "streaming" on: how many of the peer's packets have arrived, for whoever watches the call.
        var received: Int?
        /// At "done": this side was hung up (Ctrl-C), so the other side stops too, as a call ends for both.
        var hungUp: Bool?
    }

    let directory: String
    let name: String
    let peer: String

    func publish(_ card: Card) throws {
        let bytes = Array(try JSONEncoder().encode(card))
        try AtomicFile.write(bytes, to: "\(directory)/\(name).json", permissions: 0o644, existing: .replace)
    }

    func publish(host: String, port: UInt16, stage: Stage) throws {
        try publish(Card(host: host, port: port, stage: stage))
    }

    /// The peer's card as it is now, if it has one that reads. The directory is shared: only a small regular
    /// file is read (a device or a link to one, or a huge file, reads as no card).
    func peerCard() -> Card? {
        guard let file = try? FileContents.read("\(directory)/\(peer).json", limit: 4096) else { return nil }
        return try? JSONDecoder().decode(Card.self, from: Data(file.bytes))
    }

    /// The peer's card once it has reached `stage` or a later one, polling every 20 ms. `stop`, asked at each
    /// poll, ends the wait (Ctrl-C before the call began).
    func wait(
        for stage: Stage, until deadline: ContinuousClock.Instant, stop: @Sendable () -> Bool = { false }
    ) async throws -> Card {
        while ContinuousClock.now < deadline {
            if let card = peerCard(), card.stage >= stage { return card }
            if stop() {
                throw TurnkeeperError(.checkFailed, "stopped (Ctrl-C or SIGTERM) while waiting for \(peer)")
            }
            try await Pause.for(.milliseconds(20))
        }
        throw TurnkeeperError(
            .checkFailed,
            "\(peer) did not show up in \(directory) in time (stage \(stage.rawValue)). Start both parties with the "
                + "same --rendezvous directory.")
    }
}
