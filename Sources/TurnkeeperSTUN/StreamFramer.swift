/// Splits a TCP or TLS byte stream into STUN messages and ChannelData frames (RFC 8656 §12.5).
///
/// A STUN message's length says where it ends; ChannelData is padded to 4 bytes on streams.
/// Bytes that are neither, and frames longer than the protocol allows, are errors: the caller closes
/// the connection. Buffered input never exceeds one maximal frame plus what one read delivers.
public struct STUNStreamFramer: Sendable {
    /// The largest frame either kind can be: a 16-bit length plus a 20-byte header.
    public static let maximumFrameLength = 20 + 65_535 + 3

    private var buffer: [UInt8] = []
    private var start = 0

    public init() {}

    public var bufferedByteCount: Int { buffer.count - start }

    public mutating func append(_ bytes: some Collection<UInt8>) {
        if start > 0 && start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next whole frame's bytes, or nil until more arrive.
    public mutating func next() throws(STUNDecodingError) -> [UInt8]? {
        try withNextFrame { Array($0) }
    }

    /// The next whole frame lent to `body` without a copy (a load client reads thousands a second), or nil
    /// until more arrive. The bytes are valid only inside `body`.
    public mutating func withNextFrame<Result>(_ body: (UnsafeRawBufferPointer) -> Result) throws(STUNDecodingError)
        -> Result?
    {
        let available = buffer.count - start
        guard available >= 4 else { return nil }
        let length = Int(buffer[start + 2]) << 8 | Int(buffer[start + 3])
        let frameLength: Int
        switch buffer[start] >> 6 {
        case 0:
            guard length % 4 == 0 else {
                throw STUNDecodingError("STUN length \(length) on a stream is not a multiple of 4", at: start)
            }
            frameLength = 20 + length
        case 1:
            frameLength = 4 + padded(length)
        default:
            throw STUNDecodingError(
                "stream byte 0x\(String(buffer[start], radix: 16)) starts neither STUN nor ChannelData", at: start)
        }
        guard available >= frameLength else { return nil }
        let frame = buffer.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[start..<(start + frameLength)])) }
        start += frameLength
        // Compact once the consumed prefix dominates, so memory stays bounded on long streams.
        if start > 65_536 && start * 2 > buffer.count {
            buffer.removeFirst(start)
            start = 0
        }
        return frame
    }
}
