import TurnkeeperProbe
public import TurnkeeperTURNClient

/// The traffic of each call, both ways.
public enum LoadProfile: Sendable, Hashable {
    /// Opus at 20 ms: 50 packets a second of 160 bytes.
    case voice
    /// A video stream: each frame's bytes sent at once, split into packets of at most 1,200 bytes (the payload
    /// size browsers keep under a 1,280-byte path MTU).
    case video(bitsPerSecond: Int, framesPerSecond: Int)
    case custom(packetsPerSecond: Int, packetSize: Int)

    static let largestVideoPacket = 1200

    public var shape: MediaShape {
        switch self {
        case .voice:
            return MediaShape(frameInterval: .milliseconds(20), packetsPerFrame: 1, packetSize: 160)
        case .video(let bitsPerSecond, let framesPerSecond):
            let frameBytes = max(MediaPacket.headerLength, bitsPerSecond / 8 / max(1, framesPerSecond))
            let packets = (frameBytes + Self.largestVideoPacket - 1) / Self.largestVideoPacket
            return MediaShape(
                frameInterval: .seconds(1) / max(1, framesPerSecond), packetsPerFrame: packets,
                packetSize: (frameBytes + packets - 1) / packets)
        case .custom(let packetsPerSecond, let packetSize):
            return MediaShape(
                frameInterval: .seconds(1) / max(1, packetsPerSecond), packetsPerFrame: 1,
                packetSize: max(MediaPacket.headerLength, packetSize))
        }
    }

    /// In words, for the report.
    public var description: String {
        let shape = shape
        switch self {
        case .voice:
            return "voice (50 packets/s of 160 bytes each way)"
        case .video(let bitsPerSecond, let framesPerSecond):
            return "video (\(bitsPerSecond / 1000) kbit/s at \(framesPerSecond) frames/s: \(shape.packetsPerFrame) "
                + "packet(s) of \(shape.packetSize) bytes a frame, each way)"
        case .custom(let packetsPerSecond, _):
            return "custom (\(packetsPerSecond) packets/s of \(shape.packetSize) bytes each way)"
        }
    }
}
