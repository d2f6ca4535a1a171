import TurnkeeperSTUN

/// Splits the input at fuzzer-chosen points and feeds it to the framer: frames must come out whole,
/// in order, never longer than the protocol allows, and the buffer must never exceed what was fed. The first
/// byte's top bit picks copied frames (`next`) or lent ones (`withNextFrame`, the media tap's path).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let first = bytes.first else { return 0 }
    let chunk = Int(first % 64) + 1
    let lend = first & 0x80 != 0
    var framer = STUNStreamFramer()
    var offset = 1
    var consumed = 0
    while offset < bytes.count {
        let end = min(offset + chunk, bytes.count)
        framer.append(bytes[offset..<end])
        offset = end
        do {
            while let frame = try (lend ? framer.withNextFrame { Array($0) } : framer.next()) {
                precondition(frame.count <= STUNStreamFramer.maximumFrameLength, "frame longer than allowed")
                precondition(Array(bytes[(1 + consumed)..<(1 + consumed + frame.count)]) == frame, "frame out of order")
                consumed += frame.count
                _ = try? TURNFrame(decoding: frame)
            }
        } catch {
            return 0
        }
        precondition(framer.bufferedByteCount == offset - 1 - consumed, "framer lost or invented bytes")
    }
    return 0
}
