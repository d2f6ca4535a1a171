import TurnkeeperSTUN

/// Every byte string must decode or throw; whatever decodes must survive every typed reader,
/// integrity and fingerprint checks, and re-encode to a message that decodes the same.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let frame = try? TURNFrame(decoding: bytes), case .channelData(let channelData) = frame {
        precondition((try? ChannelData(decoding: channelData.encoded(padded: true))) == channelData)
    }
    guard let decoded = try? DecodedSTUNMessage(bytes) else { return 0 }
    let message = decoded.message
    for type in [STUNAttributeType.xorMappedAddress, .xorPeerAddress, .xorRelayedAddress] {
        _ = try? message.xorAddress(type)
    }
    _ = try? message.plainAddress(.mappedAddress)
    _ = try? message.plainAddress(.alternateServer)
    _ = try? message.errorCode()
    _ = try? message.lifetime()
    _ = try? message.channelNumber()
    _ = try? message.unknownAttributes()
    _ = try? message.passwordAlgorithms()
    _ = message.text(.realm)
    _ = decoded.verifyIntegrity(.longTerm(username: "u", realm: "r", password: "p"))
    _ = decoded.verifyIntegrity(.shortTerm(password: "p", algorithm: .sha256))
    _ = decoded.verifyFingerprint()
    let again = try? DecodedSTUNMessage(message.encoded())
    precondition(again?.message == message, "re-encoding changed the message")
    return 0
}
