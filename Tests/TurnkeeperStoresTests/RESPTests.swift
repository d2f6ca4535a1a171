import TestSupport
import Testing
import TurnkeeperRESP

@Suite("RESP codec", .mayBlock)
struct RESPTests {
    @Test("Commands are arrays of bulk strings, binary-safe")
    func command() {
        let bytes = RESP.command([Array("SADD".utf8), Array("turn/realm/r/secret".utf8), [0x0D, 0x0A]])
        #expect(
            String(decoding: bytes, as: UTF8.self) == "*3\r\n$4\r\nSADD\r\n$19\r\nturn/realm/r/secret\r\n$2\r\n\r\n\r\n"
        )
    }

    @Test("Every reply type decodes, with the bytes it used")
    func replies() throws {
        let cases: [(String, RESPValue)] = [
            ("+OK\r\n", .simple("OK")),
            ("-WRONGPASS invalid\r\n", .error("WRONGPASS invalid")),
            (":1\r\n", .integer(1)),
            ("$3\r\nabc\r\n", .bulk(Array("abc".utf8))),
            ("$-1\r\n", .bulk(nil)),
            ("*2\r\n$1\r\na\r\n$1\r\nb\r\n", .array([.bulk([97]), .bulk([98])])),
            ("*0\r\n", .array([])),
            ("*-1\r\n", .array(nil)),
        ]
        for (text, expected) in cases {
            let decoded = try #require(try RESP.decode(Array(text.utf8) + Array("+NEXT\r\n".utf8)))
            #expect(decoded.0 == expected && decoded.1 == text.utf8.count, "\(text)")
        }
    }

    @Test("A reply cut anywhere asks for more bytes instead of failing")
    func partial() throws {
        let full = Array("*2\r\n$5\r\nhello\r\n:42\r\n".utf8)
        for cut in 0..<full.count {
            #expect(try RESP.decode(Array(full.prefix(cut))) == nil, "cut at \(cut)")
        }
    }

    @Test(
        "Hostile replies are refused, never trapped on",
        arguments: [
            "?what\r\n", ":12x\r\n", "$99999999999\r\n", "$-2\r\n", "*-5\r\n", "*9999999\r\n", "$3\r\nabcXY",
            "+OK\rX", String(repeating: "*1\r\n", count: 20) + ":1\r\n",
        ]
    )
    func hostile(text: String) {
        #expect(throws: RESPError.self) { try RESP.decode(Array(text.utf8)) }
    }
}
