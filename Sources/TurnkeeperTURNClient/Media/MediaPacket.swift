import Glibc

/// The packets of turnkeeper's test calls: "TKCL" (media) or "TKCE" (an echo of media), a sequence number, the
/// send time in nanoseconds of CLOCK_MONOTONIC, padding to the packet size. Both parties of a lab or load call
/// run on one machine, so one clock measures one-way transit.
public enum MediaPacket {
    public static let media: [UInt8] = Array("TKCL".utf8)
    public static let echo: [UInt8] = Array("TKCE".utf8)
    /// Tag, sequence and send time.
    public static let headerLength = 16
    static let sequenceOffset = 4
    static let timeOffset = 8

    public static func make(sequence: UInt32, sentNanos: UInt64, size: Int) -> [UInt8] {
        var bytes = media
        bytes.reserveCapacity(max(size, headerLength))
        for shift in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: sequence >> shift)) }
        for shift in stride(from: 56, through: 0, by: -8) {
            bytes.append(UInt8(truncatingIfNeeded: sentNanos >> shift))
        }
        bytes.append(contentsOf: repeatElement(0, count: max(0, size - bytes.count)))
        return bytes
    }

    /// (kind, sequence, send time) of one of our packets, or nil for anything else. Reads in place.
    public static func parse(_ bytes: UnsafeRawBufferPointer) -> (echo: Bool, sequence: UInt32, sentNanos: UInt64)? {
        guard bytes.count >= headerLength, bytes[0] == 0x54, bytes[1] == 0x4B, bytes[2] == 0x43 else { return nil }
        let echo: Bool
        switch bytes[3] {
        case 0x4C: echo = false
        case 0x45: echo = true
        default: return nil
        }
        var sequence: UInt32 = 0
        for index in sequenceOffset..<timeOffset { sequence = sequence << 8 | UInt32(bytes[index]) }
        var sent: UInt64 = 0
        for index in timeOffset..<headerLength { sent = sent << 8 | UInt64(bytes[index]) }
        return (echo, sequence, sent)
    }

    public static func parse(_ bytes: [UInt8]) -> (echo: Bool, sequence: UInt32, sentNanos: UInt64)? {
        bytes.withUnsafeBytes { parse($0) }
    }

    public static func echoing(_ bytes: [UInt8]) -> [UInt8] { echo + bytes.dropFirst(4) }

    /// CLOCK_MONOTONIC in nanoseconds: the same clock in every network namespace of one machine, and the clock
    /// of NIO's deadlines.
    public static func now() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }
}
