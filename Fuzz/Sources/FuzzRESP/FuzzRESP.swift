import TurnkeeperRESP

/// Redis replies from a hostile or broken server: decoding must throw or ask for more, never trap, and a
/// decoded reply never claims more bytes than it was given.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let (_, used) = try? RESP.decode(bytes) {
        precondition(used > 0 && used <= bytes.count, "a reply used \(used) of \(bytes.count) bytes")
    }
    return 0
}
