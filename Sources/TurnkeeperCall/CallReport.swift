/// What one side of a test call saw. `turnkeeper call --json` prints this.
public struct CallReport: Sendable, Codable {
    public enum Mode: String, Sendable, Codable {
        /// Media through both parties' TURN relays.
        case relayed
        /// Straight between the parties' server-reflexive addresses (hole punching), no TURN.
        case direct
    }

    public var name: String
    public var peer: String
    public var mode: Mode
    /// The URI the relay or the reflexive address came from.
    public var uri: String
    /// The source address this host uses toward the server.
    public var local: String?
    public var reflexive: String?
    public var relayed: String?
    /// Where our packets went: the peer's relayed address, or its reflexive one.
    public var peerAddress: String?
    public var sent: Int
    /// The peer's packets that reached us, of `expected`.
    public var received: Int
    /// What the peer said it sent (at least what arrived); what its options planned if it did not say.
    public var expected: Int
    /// True when this side was stopped (SIGINT or SIGTERM) before its planned duration; absent otherwise.
    public var stoppedEarly: Bool?
    public var lossPercent: Double
    public var rttMilliseconds: RTT?
    /// RFC 3550 interarrival jitter of the peer's stream.
    public var jitterMilliseconds: Double?
    public var passed: Bool
    /// Why it did not pass, in words, when it did not.
    public var problem: String?

    public struct RTT: Sendable, Codable {
        public var min: Double
        public var median: Double
        public var max: Double
    }

    /// True when the reflexive address differs from the local one: a NAT is in between.
    public var behindNAT: Bool? {
        guard let local, let reflexive, let host = TransportText.host(of: reflexive) else { return nil }
        return host != local
    }
}

enum TransportText {
    /// "1.2.3.4:5" → "1.2.3.4"; "[::1]:5" → "::1".
    static func host(of text: String) -> String? {
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            return String(text[text.index(after: text.startIndex)..<close])
        }
        return text.lastIndex(of: ":").map { String(text[..<$0]) }
    }
}
