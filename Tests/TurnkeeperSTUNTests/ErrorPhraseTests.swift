import Testing
import TurnkeeperSTUN

@Suite("ERROR-CODE phrases: codes, not text")
struct ErrorPhraseTests {
    @Test("coturn 4.6.1's NUL padding is stripped; 4.10+'s missing phrase becomes the RFC's; text stays escaped")
    func phrases() {
        #expect(
            STUNErrorCode(code: 440, reason: "Unsupported address family\u{0}\u{0}").description
                == "440 Unsupported address family")
        #expect(STUNErrorCode(code: 403, reason: "").description == "403 Forbidden")
        #expect(STUNErrorCode(code: 486, reason: "\u{0}\u{0}\u{0}").description == "486 Allocation Quota Reached")
        #expect(STUNErrorCode(code: 599, reason: "").description == "599")
        #expect(STUNErrorCode(code: 400, reason: "bad\u{1b}[31m").description.contains("\u{1b}") == false)
    }
}

/// Answers recorded byte for byte from upstream coturn 4.17.1 (built from its tag) and Debian's 4.6.1 on
/// loopback (docs/upstream-coturn.md), decoded as the probe and audit decode them.
@Suite("Recorded coturn answers")
struct RecordedAnswerTests {
    static func bytes(_ hex: String) -> [UInt8] {
        stride(from: 0, to: hex.count, by: 2).map { offset in
            let start = hex.index(hex.startIndex, offsetBy: offset)
            return UInt8(hex[start..<hex.index(start, offsetBy: 2)], radix: 16)!
        }
    }

    static func error(_ hex: String) throws -> STUNErrorCode? {
        try DecodedSTUNMessage(bytes(hex)).message.errorCode()
    }

    @Test("4.17.1: no reason phrase anywhere, so the RFC's phrase is shown; a stateless nonce in 438 and 401")
    func upstream() throws {
        let unauthorized = try DecodedSTUNMessage(
            Self.bytes(
                "011300342112a442e4e402a48f0a24d73e34346f00090004000004010015001836623136343133323733376634656230323265"
                    + "63376635310014000b6578616d706c652e6f726700")
        ).message
        #expect(try unauthorized.errorCode()?.reason == "")
        #expect(try unauthorized.errorCode()?.description == "401 Unauthenticated")  // RFC 8489 §14.8
        #expect(unauthorized.text(.nonce)?.count == 24 && unauthorized.value(.software) == nil)
        let stale = try Self.error(
            "011300342112a442681eeb59311ea612cabcdd7d00090004000004260015001836623136343133323962626232623266663063"
                + "37633462380014000b6578616d706c652e6f726700")
        #expect(stale?.code == STUNErrorCode.staleNonce && stale?.description == "438 Stale Nonce")
        let noFamily = try Self.error(
            "011300202112a442b7d7a7c141fb62f02157ccfa000900040000042800080014d7be8915c05937578303593a6c7c46f31103a7ac")
        #expect(noFamily?.description == "440 Address Family not Supported")
        let mismatch = try Self.error(
            "011800202112a44219b90959ddaca968524fe6a1000900040000042b000800140f56d55101b198358b92a327d630e585309008bf")
        #expect(mismatch?.description == "443 Peer Address Family Mismatch")
        // A Binding answer: XOR-MAPPED-ADDRESS only, no SOFTWARE and no OTHER-ADDRESS (RFC 5780 off).
        let binding = try DecodedSTUNMessage(
            Self.bytes("0101000c2112a4421babc2f3abbb16d05faa4682002000080001efb75e12a443")
        ).message
        #expect(try binding.xorAddress(.xorMappedAddress)?.host == "127.0.0.1")
        #expect(binding.value(.software) == nil && binding.value(.otherAddress) == nil)
    }

    @Test("4.6.1: NUL-padded phrases are shown without the padding; SOFTWARE and OTHER-ADDRESS are sent")
    func debian() throws {
        let noFamily = try Self.error(
            "011300542112a44298b599b3b83c2e343792b11c0009002000000428556e737570706f7274656420616464726573732066616d69"
                + "6c79000080220014436f7475726e2d342e362e312027476f7273742700080014cd49be3e9c7636dc66e2a0fbca9585fed4450b"
                + "47")
        #expect(noFamily?.description == "440 Unsupported address family")
        let binding = try DecodedSTUNMessage(
            Self.bytes(
                "010100482112a442f3b36983e8769394f516d3b90020000800018bd05e12a443000100080001aac27f000001802b0008000"
                    + "18afa7f000001802c000800018afb7f00000180220014436f7475726e2d342e362e312027476f72737427")
        ).message
        #expect(binding.text(.software) == "Coturn-4.6.1 'Gorst'")
        // OTHER-ADDRESS: the same IP and the next port, which RFC 5780's tests must not take for a second address.
        let other = try binding.plainAddress(.otherAddress)
        let origin = try binding.plainAddress(.responseOrigin)
        #expect(other?.address == origin?.address && other.map { Int($0.port) } == origin.map { Int($0.port) + 1 })
    }
}
