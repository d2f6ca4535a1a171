import TurnkeeperCrypto

/// A STUN message (RFC 8489 §5): type, transaction ID and attributes, with no I/O.
public struct STUNMessage: Sendable, Hashable {
    public static let magicCookie: UInt32 = 0x2112_A442
    public static let headerLength = 20
    static let fingerprintXOR: UInt32 = 0x5354_554E

    public var type: STUNMessageType
    public var transactionID: TransactionID
    public var attributes: [STUNAttribute]

    public init(_ type: STUNMessageType, transactionID: TransactionID = .random(), attributes: [STUNAttribute] = []) {
        self.type = type
        self.transactionID = transactionID
        self.attributes = attributes
    }

    /// The first attribute of `type`.
    public func value(_ type: STUNAttributeType) -> [UInt8]? {
        attributes.first { $0.type == type }?.value
    }

    public mutating func append(_ type: STUNAttributeType, _ value: [UInt8]) {
        attributes.append(STUNAttribute(type, value))
    }

    /// The wire form. With `integrity`, MESSAGE-INTEGRITY (or -SHA256) is appended; with `fingerprint`,
    /// FINGERPRINT last. `padding` fills attributes to 4 bytes (RFC 5769's vectors use spaces).
    public func encoded(integrity: STUNIntegrityKey? = nil, fingerprint: Bool = false, padding: UInt8 = 0) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Self.headerLength + attributes.reduce(0) { $0 + 4 + padded($1.value.count) } + 64)
        bytes.appendUInt16(type.rawValue)
        bytes.appendUInt16(0)
        bytes.appendUInt32(Self.magicCookie)
        bytes.append(contentsOf: transactionID.bytes)
        for attribute in attributes {
            appendAttribute(attribute.type, attribute.value, to: &bytes, padding: padding)
        }
        if let integrity {
            let tagLength = integrity.algorithm == .sha1 ? 20 : 32
            setLength(&bytes, bytes.count - Self.headerLength + 4 + tagLength)
            let tag = integrity.authenticate(bytes[...])
            appendAttribute(integrity.attributeType, tag, to: &bytes, padding: padding)
        }
        if fingerprint {
            setLength(&bytes, bytes.count - Self.headerLength + 8)
            let crc = CRC32.checksum(bytes[...]) ^ Self.fingerprintXOR
            appendAttribute(.fingerprint, [UInt8](bigEndian: crc), to: &bytes, padding: padding)
        }
        setLength(&bytes, bytes.count - Self.headerLength)
        return bytes
    }

    private func appendAttribute(_ type: STUNAttributeType, _ value: [UInt8], to bytes: inout [UInt8], padding: UInt8) {
        bytes.appendUInt16(type.rawValue)
        bytes.appendUInt16(UInt16(value.count))
        bytes.append(contentsOf: value)
        bytes.append(contentsOf: repeatElement(padding, count: padded(value.count) - value.count))
    }

    private func setLength(_ bytes: inout [UInt8], _ length: Int) {
        bytes[2] = UInt8(length >> 8 & 0xFF)
        bytes[3] = UInt8(length & 0xFF)
    }
}

@inline(__always)
func padded(_ length: Int) -> Int { (length + 3) & ~3 }

/// A message decoded from the wire, with what is needed to check its integrity and fingerprint.
public struct DecodedSTUNMessage: Sendable {
    public let message: STUNMessage
    public let bytes: [UInt8]
    /// Where each attribute's header starts, parallel to `message.attributes`.
    let offsets: [Int]

    /// Decodes one whole STUN message. Every length is checked against the bytes actually present,
    /// so a hostile peer can make this throw but never trap or allocate beyond its input.
    public init(_ input: some Collection<UInt8>) throws(STUNDecodingError) {
        let bytes = Array(input)
        guard bytes.count >= STUNMessage.headerLength else {
            throw STUNDecodingError("\(bytes.count) bytes is shorter than a STUN header (20)", at: 0)
        }
        guard bytes[0] & 0xC0 == 0 else {
            throw STUNDecodingError("the first two bits are not zero, so this is not STUN", at: 0)
        }
        let length = Int(bytes.readUInt16(2))
        guard length % 4 == 0 else {
            throw STUNDecodingError("message length \(length) is not a multiple of 4", at: 2)
        }
        guard STUNMessage.headerLength + length == bytes.count else {
            throw STUNDecodingError(
                "message length \(length) does not match the \(bytes.count - 20) bytes after the header", at: 2)
        }
        guard bytes.readUInt32(4) == STUNMessage.magicCookie else {
            throw STUNDecodingError("the magic cookie is wrong: not an RFC 5389/8489 STUN message", at: 4)
        }
        var attributes: [STUNAttribute] = []
        var offsets: [Int] = []
        var offset = STUNMessage.headerLength
        while offset < bytes.count {
            guard offset + 4 <= bytes.count else {
                throw STUNDecodingError("attribute header cut short", at: offset)
            }
            let type = STUNAttributeType(rawValue: bytes.readUInt16(offset))
            let valueLength = Int(bytes.readUInt16(offset + 2))
            let valueEnd = offset + 4 + valueLength
            guard offset + 4 + padded(valueLength) <= bytes.count else {
                throw STUNDecodingError("\(type) claims \(valueLength) bytes but the message ends first", at: offset)
            }
            attributes.append(STUNAttribute(type, Array(bytes[(offset + 4)..<valueEnd])))
            offsets.append(offset)
            offset += 4 + padded(valueLength)
        }
        self.bytes = bytes
        self.offsets = offsets
        self.message = STUNMessage(
            STUNMessageType(rawValue: bytes.readUInt16(0)),
            transactionID: TransactionID(Array(bytes[8..<20])),
            attributes: attributes
        )
    }

    public enum IntegrityCheck: Sendable, Hashable {
        case valid
        case invalid
        case absent
    }

    /// Checks MESSAGE-INTEGRITY (or -SHA256, by the key's algorithm) over the bytes before it.
    public func verifyIntegrity(_ key: STUNIntegrityKey) -> IntegrityCheck {
        guard let index = message.attributes.firstIndex(where: { $0.type == key.attributeType }) else { return .absent }
        let tag = message.attributes[index].value
        let expectedLength = key.algorithm == .sha1 ? 20 : 32
        guard tag.count == expectedLength || (key.algorithm == .sha256 && (16..<32).contains(tag.count)) else {
            return .invalid
        }
        let start = offsets[index]
        var covered = Array(bytes[0..<start])
        let length = start - STUNMessage.headerLength + 4 + padded(tag.count)
        covered[2] = UInt8(length >> 8 & 0xFF)
        covered[3] = UInt8(length & 0xFF)
        let computed = key.authenticate(covered[...]).prefix(tag.count)
        return ConstantTime.equals(computed, tag) ? .valid : .invalid
    }

    /// True when FINGERPRINT is the last attribute and matches; nil when there is none.
    public func verifyFingerprint() -> Bool? {
        guard let index = message.attributes.lastIndex(where: { $0.type == .fingerprint }) else { return nil }
        guard index == message.attributes.count - 1, message.attributes[index].value.count == 4 else { return false }
        let start = offsets[index]
        var covered = Array(bytes[0..<start])
        let length = start - STUNMessage.headerLength + 8
        covered[2] = UInt8(length >> 8 & 0xFF)
        covered[3] = UInt8(length & 0xFF)
        let expected = CRC32.checksum(covered[...]) ^ STUNMessage.fingerprintXOR
        return message.attributes[index].value.readUInt32(0) == expected
    }
}

extension Array where Element == UInt8 {
    init(bigEndian value: UInt32) {
        self = [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
    }

    mutating func appendUInt16(_ value: UInt16) {
        append(UInt8(value >> 8))
        append(UInt8(value & 0xFF))
    }

    mutating func appendUInt32(_ value: UInt32) { append(contentsOf: [UInt8](bigEndian: value)) }

    /// Callers have checked that `offset + 2 <= count`.
    func readUInt16(_ offset: Int) -> UInt16 { UInt16(self[offset]) << 8 | UInt16(self[offset + 1]) }

    /// Callers have checked that `offset + 4 <= count`.
    func readUInt32(_ offset: Int) -> UInt32 {
        UInt32(self[offset]) << 24 | UInt32(self[offset + 1]) << 16 | UInt32(self[offset + 2]) << 8
            | UInt32(self[offset + 3])
    }
}
