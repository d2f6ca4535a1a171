import TestSupport
import Testing
import TurnkeeperCrypto

/// One published test case: key, data, expected tag (hex), and how many bytes of the tag it fixes.
struct HMACVector: Sendable, CustomTestStringConvertible {
    let name: String
    let key: [UInt8]
    let data: [UInt8]
    let expected: String
    var truncatedTo: Int?

    var testDescription: String { name }
}

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
private func repeated(_ byte: UInt8, _ count: Int) -> [UInt8] { [UInt8](repeating: byte, count: count) }

@Suite("HMAC against published vectors", .mayBlock)
struct HMACTests {
    // RFC 2202, section 3.
    static let rfc2202: [HMACVector] = [
        .init(
            name: "2202-1", key: repeated(0x0b, 20), data: bytes("Hi There"),
            expected: "b617318655057264e28bc0b6fb378c8ef146be00"),
        .init(
            name: "2202-2", key: bytes("Jefe"), data: bytes("what do ya want for nothing?"),
            expected: "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"),
        .init(
            name: "2202-3", key: repeated(0xaa, 20), data: repeated(0xdd, 50),
            expected: "125d7342b9ac11cd91a39af48aa17b4f63f175d3"),
        .init(
            name: "2202-4",
            key: Array(1...25),
            data: repeated(0xcd, 50),
            expected: "4c9007f4026250c6bc8414f9bf50c86c2d7235da"
        ),
        .init(
            name: "2202-5",
            key: repeated(0x0c, 20),
            data: bytes("Test With Truncation"),
            expected: "4c1a03424b55e07fe7f27be1",
            truncatedTo: 12
        ),
        .init(
            name: "2202-6",
            key: repeated(0xaa, 80),
            data: bytes("Test Using Larger Than Block-Size Key - Hash Key First"),
            expected: "aa4ae5e15272d00e95705637ce8a3b55ed402112"
        ),
        .init(
            name: "2202-7",
            key: repeated(0xaa, 80),
            data: bytes("Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data"),
            expected: "e8e99d0f45237d786d6bbaa7965c7808bbff1a91"
        ),
    ]

    // RFC 4231, section 4.
    static let rfc4231: [HMACVector] = [
        .init(
            name: "4231-1",
            key: repeated(0x0b, 20),
            data: bytes("Hi There"),
            expected: "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        ),
        .init(
            name: "4231-2",
            key: bytes("Jefe"),
            data: bytes("what do ya want for nothing?"),
            expected: "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        ),
        .init(
            name: "4231-3",
            key: repeated(0xaa, 20),
            data: repeated(0xdd, 50),
            expected: "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"
        ),
        .init(
            name: "4231-4",
            key: Array(1...25),
            data: repeated(0xcd, 50),
            expected: "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"
        ),
        .init(
            name: "4231-5",
            key: repeated(0x0c, 20),
            data: bytes("Test With Truncation"),
            expected: "a3b6167473100ee06e0c796c2955552b",
            truncatedTo: 16
        ),
        .init(
            name: "4231-6",
            key: repeated(0xaa, 131),
            data: bytes("Test Using Larger Than Block-Size Key - Hash Key First"),
            expected: "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        ),
        .init(
            name: "4231-7",
            key: repeated(0xaa, 131),
            data: bytes(
                "This is a test using a larger than block-size key and a larger than block-size data. "
                    + "The key needs to be hashed before being used by the HMAC algorithm."
            ),
            expected: "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"
        ),
    ]

    @Test("RFC 2202 HMAC-SHA1", arguments: rfc2202)
    func sha1(vector: HMACVector) throws {
        let tag = try HMAC.authenticationCode(.sha1, key: vector.key, message: vector.data)
        #expect(tag.count == 20)
        #expect(Hex.encode(tag.prefix(vector.truncatedTo ?? 20)) == vector.expected)
    }

    @Test("RFC 4231 HMAC-SHA256", arguments: rfc4231)
    func sha256(vector: HMACVector) throws {
        let tag = try HMAC.authenticationCode(.sha256, key: vector.key, message: vector.data)
        #expect(tag.count == 32)
        #expect(Hex.encode(tag.prefix(vector.truncatedTo ?? 32)) == vector.expected)
    }

    @Test("A keyed context gives the same tags however often and in whatever order it is reused")
    func keyedReuse() throws {
        let keyed = try KeyedHMAC(.sha1, key: bytes("Jefe"))
        let first = keyed.authenticationCode(for: bytes("what do ya want for nothing?"))
        let other = keyed.authenticationCode(for: bytes("Hi There"))
        let again = keyed.authenticationCode(for: bytes("what do ya want for nothing?"))
        #expect(Hex.encode(first) == "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79")
        #expect(first == again)
        #expect(other != first)
    }

    @Test("Empty key and empty message are still an HMAC")
    func emptyInputs() throws {
        let tag = try HMAC.authenticationCode(.sha1, key: [UInt8](), message: [UInt8]())
        #expect(Hex.encode(tag) == "fbdb1d1b18aa6c08324b7d64b71fb76370690e1d")
    }
}

@Suite("Digests, random bytes, constant-time comparison", .mayBlock)
struct PrimitiveTests {
    @Test func sha256OfABC() {
        #expect(
            Hex.encode(Digest.sha256(bytes("abc")))
                == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(Hex.encode(Digest.sha1(bytes("abc"))) == "a9993e364706816aba3e25717850c26c9cd0d89d")
    }

    @Test func randomBytesHaveTheLengthAskedAndDiffer() throws {
        let a = try SecureRandom.bytes(32)
        let b = try SecureRandom.bytes(32)
        #expect(a.count == 32)
        #expect(a != b)
        #expect(try SecureRandom.bytes(0).isEmpty)
    }

    @Test func constantTimeEquality() {
        #expect(ConstantTime.equals(bytes("same"), bytes("same")))
        #expect(!ConstantTime.equals(bytes("same"), bytes("samf")))
        #expect(!ConstantTime.equals(bytes("xame"), bytes("same")))
        #expect(!ConstantTime.equals(bytes("same"), bytes("same!")))
        #expect(ConstantTime.equals([UInt8](), [UInt8]()))
        #expect(!ConstantTime.equals([UInt8](), bytes("a")))
    }
}
