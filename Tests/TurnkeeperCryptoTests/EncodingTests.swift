import Foundation
import TestSupport
import Testing
import TurnkeeperCrypto

@Suite("Base64 and hex", .mayBlock)
struct EncodingTests {
    // RFC 4648, section 10.
    static let vectors: [(String, String)] = [
        ("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ]

    @Test func rfc4648Vectors() {
        for (plain, encoded) in Self.vectors {
            #expect(Base64.encode(Array(plain.utf8)) == encoded)
            #expect(Base64.decode(encoded) == Array(plain.utf8))
        }
    }

    @Test func agreesWithFoundationOnRandomInput() throws {
        for length in 0..<70 {
            let input = try SecureRandom.bytes(length)
            let ours = Base64.encode(input)
            #expect(ours == Data(input).base64EncodedString())
            #expect(Base64.decode(ours) == input)
        }
    }

    @Test(arguments: ["Zg=", "Z===", "Zg==Zg==", "Zm9v!", "Zm=v", "=Zm9", "Zm9v\n"])
    func rejectsMalformed(text: String) {
        #expect(Base64.decode(text) == nil)
    }

    @Test func hexRoundTrip() {
        let input: [UInt8] = [0x00, 0x7f, 0x80, 0xff, 0x12]
        #expect(Hex.encode(input) == "007f80ff12")
        #expect(Hex.decode("007F80ff12") == input)
        #expect(Hex.decode("0") == nil)
        #expect(Hex.decode("zz") == nil)
    }
}
