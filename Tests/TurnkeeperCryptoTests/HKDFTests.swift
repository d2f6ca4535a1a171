import TestSupport
import Testing
import TurnkeeperCrypto

@Suite("HKDF-SHA256", .mayBlock)
struct HKDFTests {
    @Test("RFC 5869 test cases 1 and 3")
    func vectors() throws {
        let case1 = try HKDF.sha256(
            key: [UInt8](repeating: 0x0B, count: 22), salt: Array(0x00...0x0C), info: Array(0xF0...0xF9), length: 42)
        #expect(
            Hex.encode(case1)
                == "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")
        let case3 = try HKDF.sha256(key: [UInt8](repeating: 0x0B, count: 22), salt: [], info: [], length: 42)
        #expect(
            Hex.encode(case3)
                == "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8")
    }

    @Test("Lengths outside 1 to 8160 bytes are refused")
    func lengths() {
        #expect(throws: (any Error).self) { try HKDF.sha256(key: [1], salt: [], info: [], length: 0) }
        #expect(throws: (any Error).self) { try HKDF.sha256(key: [1], salt: [], info: [], length: 8161) }
    }
}
