import FoundationEssentials
import TurnkeeperCore
import TurnkeeperExecution
import TurnkeeperProbe

/// How the two parties of a test call find each other: each writes `NAME.json` into a shared directory
/// (atomically) and waits for the other's. A Matrix client would send the same facts in an m.call.invite.
struct Rendezvous: Sendable {
    struct Card: Codable, Sendable {
        /// Where the peer should send: our relayed address, or our reflexive one for a direct call.
        var host: String
        var port: UInt16
        var stage: String
        /// At "done": how many packets this side's stream numbered, so a call stopped early is judged on what
        /// was sent. Absent before "done" (and from versions that did not say it).
        var packets: Int?
    }

    let directory: String
    let name: String
    let peer: String

    func publish(host: String, port: UInt16, stage: String, packets: Int? = nil) throws {
        let bytes = Array(try JSONEncoder().encode(Card(host: host, port: port, stage: stage, packets: packets)))
        try AtomicFile.write(bytes, to: "\(directory)/\(name).json", permissions: 0o644, existing: .replace)
    }

    /// The peer's card once it has reached `stage` (or a later one in `stages`), polling every 20 ms.
    func wait(for stages: Set<String>, until deadline: ContinuousClock.Instant) async throws -> Card {
        let path = "\(directory)/\(peer).json"
        while ContinuousClock.now < deadline {
            if let data = FileManager.default.contents(atPath: path),
                let card = try? JSONDecoder().decode(Card.self, from: data), stages.contains(card.stage)
            {
                return card
            }
            try await Pause.for(.milliseconds(20))
        }
        throw TurnkeeperError(
            .checkFailed,
            "\(peer) did not show up in \(directory) in time (stage \(stages.sorted().joined(separator: "/"))). "
                + "Start both parties with the same --rendezvous directory.")
    }
}
