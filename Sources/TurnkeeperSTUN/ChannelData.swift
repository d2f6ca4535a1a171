/// A ChannelData message (RFC 8656 §12.4): 4 bytes of header instead of a Send indication's 36.
public struct ChannelData: Sendable, Hashable {
    /// Channel numbers a client may bind: 0x4000 through 0x4FFF.
    public static let validChannels: ClosedRange<UInt16> = 0x4000...0x4FFF

    public var channel: UInt16
    public var data: [UInt8]

    public init(channel: UInt16, data: [UInt8]) {
        self.channel = channel
        self.data = data
    }

    /// Over TCP and TLS the frame is padded to 4 bytes; over UDP it need not be.
    public func encoded(padded: Bool) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(4 + data.count + 3)
        bytes.appendUInt16(channel)
        bytes.appendUInt16(UInt16(data.count))
        bytes.append(contentsOf: data)
        if padded { bytes.append(contentsOf: repeatElement(0, count: TurnkeeperSTUN.padded(data.count) - data.count)) }
        return bytes
    }

    /// Decodes one frame; trailing padding is allowed, anything beyond it is not.
    public init(decoding input: some Collection<UInt8>) throws(STUNDecodingError) {
        let bytes = Array(input)
        guard bytes.count >= 4 else { throw STUNDecodingError("ChannelData shorter than its 4-byte header", at: 0) }
        let channel = bytes.readUInt16(0)
        guard bytes[0] & 0xC0 == 0x40 else {
            throw STUNDecodingError(
                "channel number 0x\(String(channel, radix: 16)) is not a ChannelData channel", at: 0)
        }
        let length = Int(bytes.readUInt16(2))
        guard 4 + length <= bytes.count, bytes.count <= 4 + TurnkeeperSTUN.padded(length) else {
            throw STUNDecodingError(
                "ChannelData length \(length) does not match the \(bytes.count - 4) bytes present", at: 2)
        }
        self.init(channel: channel, data: Array(bytes[4..<(4 + length)]))
    }
}

/// What arrives on a TURN socket: a STUN message or channel data, told apart by the first two bits.
public enum TURNFrame: Sendable {
    case stun(DecodedSTUNMessage)
    case channelData(ChannelData)

    public init(decoding bytes: [UInt8]) throws(STUNDecodingError) {
        guard let first = bytes.first else { throw STUNDecodingError("empty datagram", at: 0) }
        switch first >> 6 {
        case 0: self = .stun(try DecodedSTUNMessage(bytes))
        case 1: self = .channelData(try ChannelData(decoding: bytes))
        default:
            throw STUNDecodingError("first byte 0x\(String(first, radix: 16)) is neither STUN nor ChannelData", at: 0)
        }
    }
}
