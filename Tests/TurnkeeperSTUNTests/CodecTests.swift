import TestSupport
import Testing
import TurnkeeperSTUN

@Suite("STUN/TURN codec", .mayBlock)
struct CodecTests {
    @Test("Message types interleave method and class bits as RFC 8489 §5 shows")
    func messageTypes() {
        let cases: [(STUNMethod, STUNClass, UInt16)] = [
            (.binding, .request, 0x0001), (.binding, .successResponse, 0x0101), (.binding, .errorResponse, 0x0111),
            (.allocate, .request, 0x0003), (.allocate, .errorResponse, 0x0113), (.send, .indication, 0x0016),
            (.data, .indication, 0x0017), (.channelBind, .successResponse, 0x0109), (.refresh, .request, 0x0004),
        ]
        for (method, messageClass, raw) in cases {
            #expect(STUNMessageType(method, messageClass).rawValue == raw)
            #expect(STUNMessageType(rawValue: raw) == STUNMessageType(method, messageClass))
        }
    }

    @Test("An Allocate success response round-trips with every TURN attribute")
    func allocateRoundTrip() throws {
        var message = STUNMessage(STUNMessageType(.allocate, .successResponse))
        let relayed = try #require(TransportAddress(family: .ipv6, address: Array(0..<16), port: 49152))
        let mapped = try #require(TransportAddress(ipv4: "203.0.113.7", port: 51820))
        message.appendXorAddress(.xorRelayedAddress, relayed)
        message.appendXorAddress(.xorMappedAddress, mapped)
        message.appendLifetime(600)
        message.appendText(.software, "test")
        let key = STUNIntegrityKey.longTerm(username: "1:@a:b", realm: "example.org", password: "pw")
        let decoded = try DecodedSTUNMessage(message.encoded(integrity: key, fingerprint: true))
        #expect(try decoded.message.xorAddress(.xorRelayedAddress) == relayed)
        #expect(try decoded.message.xorAddress(.xorMappedAddress) == mapped)
        #expect(try decoded.message.lifetime() == 600)
        #expect(decoded.verifyIntegrity(key) == .valid)
        #expect(decoded.verifyFingerprint() == true)
        #expect(relayed.description == "[1:203:405:607:809:a0b:c0d:e0f]:49152")
    }

    @Test("MESSAGE-INTEGRITY-SHA256 signs and verifies")
    func sha256Integrity() throws {
        let key = STUNIntegrityKey.longTerm(username: "u", realm: "r", password: "p", algorithm: .sha256)
        var message = STUNMessage(STUNMessageType(.binding, .request))
        message.appendText(.username, "u")
        let decoded = try DecodedSTUNMessage(message.encoded(integrity: key))
        #expect(decoded.message.value(.messageIntegritySHA256)?.count == 32)
        #expect(decoded.verifyIntegrity(key) == .valid)
        #expect(
            decoded.verifyIntegrity(.longTerm(username: "u", realm: "r", password: "q", algorithm: .sha256)) == .invalid
        )
    }

    @Test("ERROR-CODE, UNKNOWN-ATTRIBUTES and CHANNEL-NUMBER")
    func errorAndChannel() throws {
        var message = STUNMessage(STUNMessageType(.allocate, .errorResponse))
        message.appendErrorCode(STUNErrorCode(code: 438, reason: "Stale Nonce"))
        message.append(.unknownAttributes, [0x00, 0x19, 0x80, 0x01])
        message.appendChannelNumber(0x4001)
        let decoded = try DecodedSTUNMessage(message.encoded()).message
        #expect(try decoded.errorCode() == STUNErrorCode(code: 438, reason: "Stale Nonce"))
        #expect(try decoded.unknownAttributes() == [.requestedTransport, STUNAttributeType(rawValue: 0x8001)])
        #expect(try decoded.channelNumber() == 0x4001)
    }

    @Test(
        "Malformed messages throw instead of trapping",
        arguments: [
            "", "0001", "000100002112a442000000000000000000000000ff",  // trailing byte
            "c00100002112a442000000000000000000000000",  // top bits set
            "000100042112a442000000000000000000000000",  // length beyond the data
            "000100022112a4420000000000000000000000000000",  // length not a multiple of 4
            "000100002112a443000000000000000000000000",  // wrong cookie
            "000100042112a44200000000000000000000000000200010",  // attribute longer than the message
        ]
    )
    func malformed(hex: String) {
        let bytes = stride(from: 0, to: hex.count, by: 2).map { offset -> UInt8 in
            let start = hex.index(hex.startIndex, offsetBy: offset)
            return UInt8(hex[start..<hex.index(start, offsetBy: 2)], radix: 16)!
        }
        #expect(throws: STUNDecodingError.self) { try DecodedSTUNMessage(bytes) }
    }

    @Test("Malformed typed attributes throw; absent ones are nil")
    func malformedAttributes() throws {
        var message = STUNMessage(STUNMessageType(.binding, .successResponse))
        message.append(.xorMappedAddress, [0, 1, 0, 0, 1])
        message.append(.errorCode, [0, 0, 9, 0])
        message.append(.lifetime, [0, 0])
        #expect(throws: STUNDecodingError.self) { try message.xorAddress(.xorMappedAddress) }
        #expect(throws: STUNDecodingError.self) { try message.errorCode() }
        #expect(throws: STUNDecodingError.self) { try message.lifetime() }
        #expect(try message.xorAddress(.xorRelayedAddress) == nil)
        #expect(try message.channelNumber() == nil)
    }

    @Test("ChannelData encodes, pads on streams, and rejects bad lengths")
    func channelData() throws {
        let frame = ChannelData(channel: 0x4000, data: [1, 2, 3, 4, 5])
        #expect(frame.encoded(padded: false) == [0x40, 0x00, 0x00, 0x05, 1, 2, 3, 4, 5])
        #expect(frame.encoded(padded: true) == [0x40, 0x00, 0x00, 0x05, 1, 2, 3, 4, 5, 0, 0, 0])
        #expect(try ChannelData(decoding: frame.encoded(padded: true)) == frame)
        #expect(try ChannelData(decoding: frame.encoded(padded: false)) == frame)
        #expect(throws: STUNDecodingError.self) { try ChannelData(decoding: [0x40, 0x00, 0x00, 0x09, 1]) }
        #expect(throws: STUNDecodingError.self) { try ChannelData(decoding: [0x00, 0x01, 0x00, 0x00]) }
        #expect(throws: STUNDecodingError.self) { try ChannelData(decoding: [0x40, 0x00, 0x00, 0x00, 0, 0, 0, 0, 0]) }
    }

    @Test("The stream framer splits STUN and ChannelData arriving in arbitrary pieces")
    func streamFraming() throws {
        let stun = STUNMessage(STUNMessageType(.binding, .request)).encoded(fingerprint: true)
        let channel = ChannelData(channel: 0x4001, data: Array(repeating: 7, count: 161)).encoded(padded: true)
        let stream = stun + channel + stun
        for chunk in [1, 3, 7, 64, stream.count] {
            var framer = STUNStreamFramer()
            var frames: [[UInt8]] = []
            var offset = 0
            while offset < stream.count {
                framer.append(stream[offset..<min(offset + chunk, stream.count)])
                offset += chunk
                while let frame = try framer.next() { frames.append(frame) }
            }
            #expect(frames == [stun, channel, stun])
            #expect(framer.bufferedByteCount == 0)
        }
        // Lent in place: a body that takes only ChannelData still moves past every frame.
        var lending = STUNStreamFramer()
        lending.append(stream)
        var lent: [[UInt8]?] = []
        while let frame = try lending.withNextFrame({ $0[0] >> 6 == 1 ? Array($0) : nil }) { lent.append(frame) }
        #expect(lent == [nil, channel, nil] && lending.bufferedByteCount == 0)
    }

    @Test("The stream framer rejects bytes that are neither STUN nor ChannelData")
    func streamGarbage() {
        var framer = STUNStreamFramer()
        framer.append([0xFF, 0xFF, 0xFF, 0xFF])
        #expect(throws: STUNDecodingError.self) { try framer.next() }
        var odd = STUNStreamFramer()
        odd.append([0x00, 0x01, 0x00, 0x03])
        #expect(throws: STUNDecodingError.self) { try odd.next() }
    }

    @Test("Private, loopback and public addresses are told apart")
    func addressKinds() throws {
        #expect(try #require(TransportAddress(ipv4: "10.1.2.3", port: 1)).isPrivate)
        #expect(try #require(TransportAddress(ipv4: "172.20.0.1", port: 1)).isPrivate)
        #expect(try #require(TransportAddress(ipv4: "100.64.0.1", port: 1)).isPrivate)
        #expect(try #require(TransportAddress(ipv4: "127.0.0.1", port: 1)).isLoopback)
        #expect(!(try #require(TransportAddress(ipv4: "203.0.113.9", port: 1)).isPrivate))
        #expect(!(try #require(TransportAddress(ipv4: "172.32.0.1", port: 1)).isPrivate))
        #expect(TransportAddress(ipv4: "1.2.3", port: 1) == nil)
        #expect(TransportAddress(ipv4: "1.2.3.256", port: 1) == nil)
    }

    @Test("Transaction IDs drawn ahead are each handed out once, across refills and threads")
    func transactionIDs() async {
        // 4 tasks × 200 IDs: a dozen refills of the 64-ID pool, taken from concurrently.
        let drawn = await withTaskGroup(of: [TransactionID].self) { group in
            for _ in 0..<4 { group.addTask { (0..<200).map { _ in TransactionID.random() } } }
            return await group.reduce(into: []) { $0 += $1 }
        }
        #expect(drawn.count == 800)
        #expect(Set(drawn).count == 800)
        #expect(Set(drawn.map { $0.bytes.count }) == [12])
    }
}
