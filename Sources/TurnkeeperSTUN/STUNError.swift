/// Why bytes from the network are not a valid STUN message, ChannelData frame or attribute.
/// Parsing never traps: every malformed input ends here.
public struct STUNDecodingError: Error, Sendable, Hashable, CustomStringConvertible {
    public let reason: String
    /// Byte offset where the problem was found.
    public let offset: Int

    public init(_ reason: String, at offset: Int) {
        self.reason = reason
        self.offset = offset
    }

    public var description: String { "\(reason) (at byte \(offset))" }
}
