/// Typed reading and writing of attribute values. Readers return nil when the attribute is absent and
/// throw when it is present but malformed.
extension STUNMessage {
    /// XOR-MAPPED-ADDRESS, XOR-PEER-ADDRESS or XOR-RELAYED-ADDRESS (RFC 8489 §14.2).
    public func xorAddress(_ type: STUNAttributeType) throws(STUNDecodingError) -> TransportAddress? {
        guard let value = value(type) else { return nil }
        let plain = try Self.address(value, type: type)
        let port = plain.port ^ UInt16(Self.magicCookie >> 16)
        let mask = [UInt8](bigEndian: Self.magicCookie) + transactionID.bytes
        let address = zip(plain.address, mask).map { $0 ^ $1 }
        return TransportAddress(family: plain.family, address: address, port: port)
    }

    /// MAPPED-ADDRESS or ALTERNATE-SERVER, not XOR-ed.
    public func plainAddress(_ type: STUNAttributeType) throws(STUNDecodingError) -> TransportAddress? {
        guard let value = value(type) else { return nil }
        return try Self.address(value, type: type)
    }

    private static func address(_ value: [UInt8], type: STUNAttributeType) throws(STUNDecodingError) -> TransportAddress
    {
        guard value.count >= 4, let family = TransportAddress.Family(rawValue: value[1]) else {
            throw STUNDecodingError("\(type) has no valid address family", at: 0)
        }
        guard value.count == 4 + family.addressLength,
            let address = TransportAddress(family: family, address: Array(value[4...]), port: value.readUInt16(2))
        else {
            throw STUNDecodingError("\(type) is \(value.count) bytes, wrong for its address family", at: 0)
        }
        return address
    }

    public mutating func appendXorAddress(_ type: STUNAttributeType, _ address: TransportAddress) {
        let mask = [UInt8](bigEndian: Self.magicCookie) + transactionID.bytes
        var value: [UInt8] = [0, address.family.rawValue]
        value.appendUInt16(address.port ^ UInt16(Self.magicCookie >> 16))
        value.append(contentsOf: zip(address.address, mask).map { $0 ^ $1 })
        append(type, value)
    }

    /// ERROR-CODE (RFC 8489 §14.8).
    public func errorCode() throws(STUNDecodingError) -> STUNErrorCode? {
        guard let value = value(.errorCode) else { return nil }
        guard value.count >= 4 else { throw STUNDecodingError("ERROR-CODE is shorter than 4 bytes", at: 0) }
        let errorClass = Int(value[2] & 0x07)
        let number = Int(value[3])
        guard (3...6).contains(errorClass), number < 100 else {
            throw STUNDecodingError("ERROR-CODE \(errorClass)\(number) is outside 300-699", at: 0)
        }
        return STUNErrorCode(code: errorClass * 100 + number, reason: String(decoding: value[4...], as: UTF8.self))
    }

    public mutating func appendErrorCode(_ error: STUNErrorCode) {
        append(.errorCode, [0, 0, UInt8(error.code / 100), UInt8(error.code % 100)] + Array(error.reason.utf8))
    }

    /// USERNAME, REALM, NONCE, SOFTWARE: UTF-8 text (invalid sequences become U+FFFD). Text from a server
    /// is printed only through ``ServerText``.
    public func text(_ type: STUNAttributeType) -> String? {
        value(type).map { String(decoding: $0, as: UTF8.self) }
    }

    public mutating func appendText(_ type: STUNAttributeType, _ text: String) {
        append(type, Array(text.utf8))
    }

    /// LIFETIME in seconds (RFC 8656 §18.2).
    public func lifetime() throws(STUNDecodingError) -> UInt32? {
        guard let value = value(.lifetime) else { return nil }
        guard value.count == 4 else { throw STUNDecodingError("LIFETIME is \(value.count) bytes, not 4", at: 0) }
        return value.readUInt32(0)
    }

    public mutating func appendLifetime(_ seconds: UInt32) { append(.lifetime, [UInt8](bigEndian: seconds)) }

    /// CHANNEL-NUMBER (RFC 8656 §18.1).
    public func channelNumber() throws(STUNDecodingError) -> UInt16? {
        guard let value = value(.channelNumber) else { return nil }
        guard value.count == 4 else { throw STUNDecodingError("CHANNEL-NUMBER is \(value.count) bytes, not 4", at: 0) }
        return value.readUInt16(0)
    }

    public mutating func appendChannelNumber(_ channel: UInt16) {
        var value: [UInt8] = []
        value.appendUInt16(channel)
        value.appendUInt16(0)
        append(.channelNumber, value)
    }

    public mutating func appendRequestedTransport(_ transport: RelayTransport) {
        append(.requestedTransport, [transport.rawValue, 0, 0, 0])
    }

    public mutating func appendRequestedAddressFamily(_ family: TransportAddress.Family) {
        append(.requestedAddressFamily, [family.rawValue, 0, 0, 0])
    }

    /// UNKNOWN-ATTRIBUTES: the types a server did not understand.
    public func unknownAttributes() throws(STUNDecodingError) -> [STUNAttributeType]? {
        guard let value = value(.unknownAttributes) else { return nil }
        guard value.count % 2 == 0 else { throw STUNDecodingError("UNKNOWN-ATTRIBUTES has an odd length", at: 0) }
        return stride(from: 0, to: value.count, by: 2).map { STUNAttributeType(rawValue: value.readUInt16($0)) }
    }

    /// PASSWORD-ALGORITHMS (RFC 8489 §14.11): algorithm numbers offered by the server.
    public func passwordAlgorithms() throws(STUNDecodingError) -> [UInt16]? {
        guard let value = value(.passwordAlgorithms) else { return nil }
        var algorithms: [UInt16] = []
        var offset = 0
        while offset < value.count {
            guard offset + 4 <= value.count else {
                throw STUNDecodingError("PASSWORD-ALGORITHMS cut short", at: offset)
            }
            let parameterLength = Int(value.readUInt16(offset + 2))
            algorithms.append(value.readUInt16(offset))
            offset += 4 + padded(parameterLength)
            guard offset <= value.count else { throw STUNDecodingError("PASSWORD-ALGORITHMS cut short", at: offset) }
        }
        return algorithms
    }
}
