import TurnkeeperPostgresWire

/// PostgreSQL server messages and SCRAM challenges from a hostile or broken server: decoding must throw or ask
/// for more, never trap, and a decoded message never claims more bytes than it was given.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    var rest = bytes[...]
    while let (_, used) = try? PostgresBackend.decode(rest) {
        precondition(used >= 5 && used <= rest.count, "a message used \(used) of \(rest.count) bytes")
        rest = rest.dropFirst(used)
    }
    // As a SCRAM server-first message: iterations are capped, so this stays cheap whatever it says.
    var client = SCRAMClient(password: Array("password".utf8), nonce: "fyko+d2lbbFgONRv9qkxdawL")
    if let final = try? client.clientFinal(serverFirst: bytes) {
        precondition(!final.isEmpty)
        _ = try? client.verify(serverFinal: bytes)
    }
    return 0
}
