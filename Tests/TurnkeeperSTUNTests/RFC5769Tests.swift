import TestSupport
import Testing
import TurnkeeperCrypto
import TurnkeeperSTUN

/// RFC 5769's test vectors: decode, verify, and re-encode byte for byte.
@Suite("RFC 5769 test vectors", .mayBlock)
struct RFC5769Tests {
    static let sampleRequest = Hex.decode(
        "000100582112a442b7e7a701bc34d686fa87dfae802200105354554e207465737420636c69656e74002400046e0001ff"
            + "80290008932ff9b151263b36000600096576746a3a68367659202020000800149aeaa70cbfd8cb56781ef2b5b2d3f249"
            + "c1b571a280280004e57a3bcf"
    )!
    static let ipv4Response = Hex.decode(
        "0101003c2112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563746f7220002000080001a147e112a643"
            + "000800142b91f599fd9e90c38c7489f92af9ba53f06be7d780280004c07d4c96"
    )!
    static let ipv6Response = Hex.decode(
        "010100482112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563746f7220002000140002a1470113a9fa"
            + "a5d3f179bc25f4b5bed2b9d900080014a382954e4be67bf11784c97c8292c275bfe3ed4180280004c8fb0b4c"
    )!
    static let longTermRequest = Hex.decode(
        "000100602112a44278ad3433c6ad72c029da412e00060012e3839ee38388e383aae38383e382afe382b900000015001c"
            + "662f2f3439396b39353464364f4c33346f4c394653547679363473410014000b6578616d706c652e6f72670000080014"
            + "f67024656dd64a3e02b8e0712e85c9a28ca89666"
    )!
    static let shortTermKey = STUNIntegrityKey.shortTerm(password: "VOkJxbRl1RmTxUk/WvJxBt")

    /// Re-encodes everything but MESSAGE-INTEGRITY and FINGERPRINT, recomputing both.
    private func reencode(_ decoded: DecodedSTUNMessage, key: STUNIntegrityKey, fingerprint: Bool, padding: UInt8)
        -> [UInt8]
    {
        var message = decoded.message
        message.attributes.removeAll { $0.type == .messageIntegrity || $0.type == .fingerprint }
        return message.encoded(integrity: key, fingerprint: fingerprint, padding: padding)
    }

    @Test("2.1 Sample request")
    func sampleRequest() throws {
        let decoded = try DecodedSTUNMessage(Self.sampleRequest)
        #expect(decoded.message.type == STUNMessageType(.binding, .request))
        #expect(decoded.message.text(.software) == "STUN test client")
        #expect(decoded.message.text(.username) == "evtj:h6vY")
        #expect(decoded.verifyIntegrity(Self.shortTermKey) == .valid)
        #expect(decoded.verifyIntegrity(.shortTerm(password: "wrong")) == .invalid)
        #expect(decoded.verifyFingerprint() == true)
        #expect(reencode(decoded, key: Self.shortTermKey, fingerprint: true, padding: 0x20) == Self.sampleRequest)
    }

    @Test("2.2 Sample IPv4 response")
    func ipv4() throws {
        let decoded = try DecodedSTUNMessage(Self.ipv4Response)
        #expect(decoded.message.type == STUNMessageType(.binding, .successResponse))
        #expect(decoded.message.text(.software) == "test vector")
        let mapped = try #require(try decoded.message.xorAddress(.xorMappedAddress))
        #expect(mapped.description == "192.0.2.1:32853")
        #expect(decoded.verifyIntegrity(Self.shortTermKey) == .valid)
        #expect(decoded.verifyFingerprint() == true)
        #expect(reencode(decoded, key: Self.shortTermKey, fingerprint: true, padding: 0x20) == Self.ipv4Response)

        // Building the address from scratch gives the same attribute bytes.
        var rebuilt = STUNMessage(decoded.message.type, transactionID: decoded.message.transactionID)
        rebuilt.appendXorAddress(.xorMappedAddress, mapped)
        #expect(rebuilt.value(.xorMappedAddress) == decoded.message.value(.xorMappedAddress))
    }

    @Test("2.3 Sample IPv6 response")
    func ipv6() throws {
        let decoded = try DecodedSTUNMessage(Self.ipv6Response)
        let mapped = try #require(try decoded.message.xorAddress(.xorMappedAddress))
        #expect(mapped.description == "[2001:db8:1234:5678:11:2233:4455:6677]:32853")
        #expect(decoded.verifyIntegrity(Self.shortTermKey) == .valid)
        #expect(decoded.verifyFingerprint() == true)
        #expect(reencode(decoded, key: Self.shortTermKey, fingerprint: true, padding: 0x20) == Self.ipv6Response)
    }

    @Test("2.4 Sample request with long-term authentication")
    func longTerm() throws {
        let decoded = try DecodedSTUNMessage(Self.longTermRequest)
        #expect(decoded.message.text(.username) == "\u{30DE}\u{30C8}\u{30EA}\u{30C3}\u{30AF}\u{30B9}")
        #expect(decoded.message.text(.nonce) == "f//499k954d6OL34oL9FSTvy64sA")
        #expect(decoded.message.text(.realm) == "example.org")
        // The RFC's password after SASLprep.
        let key = STUNIntegrityKey.longTerm(
            username: decoded.message.text(.username)!,
            realm: "example.org",
            password: "TheMatrIX"
        )
        #expect(decoded.verifyIntegrity(key) == .valid)
        #expect(decoded.verifyFingerprint() == nil)
        #expect(reencode(decoded, key: key, fingerprint: false, padding: 0) == Self.longTermRequest)
    }

    @Test("A flipped bit breaks integrity and fingerprint")
    func tampering() throws {
        var bytes = Self.sampleRequest
        bytes[30] ^= 0x01
        let decoded = try DecodedSTUNMessage(bytes)
        #expect(decoded.verifyIntegrity(Self.shortTermKey) == .invalid)
        #expect(decoded.verifyFingerprint() == false)
    }
}
