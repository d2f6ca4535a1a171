import Testing
import TurnkeeperCore
import TurnkeeperPostgresWire

private func message(_ type: Character, _ body: [UInt8]) -> [UInt8] {
    let length = UInt32(body.count + 4)
    return [UInt8(ascii: type.unicodeScalars.first!)]
        + [UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)] + body
}

@Suite("PostgreSQL wire protocol and SCRAM-SHA-256")
struct PostgresWireTests {
    @Test("RFC 7677's SCRAM-SHA-256 example, byte for byte; a wrong server signature is refused")
    func scramVector() throws {
        var client = SCRAMClient(user: "user", password: Array("pencil".utf8), nonce: "rOprNGfwEbeRWgbNEkqO")
        #expect(String(decoding: client.clientFirst, as: UTF8.self) == "n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
        let serverFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        let final = try client.clientFinal(serverFirst: Array(serverFirst.utf8))
        #expect(
            String(decoding: final, as: UTF8.self)
                == "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        )
        try client.verify(serverFinal: Array("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".utf8))
        #expect(throws: TurnkeeperError.self) {
            try client.verify(serverFinal: Array("v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".utf8))
        }
        #expect(throws: TurnkeeperError.self) { try client.verify(serverFinal: Array("e=other-error".utf8)) }
    }

    @Test("A challenge that drops our nonce, lacks a salt or asks for too many iterations is refused")
    func scramHostileChallenges() {
        for challenge in [
            "r=someoneElse,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            "r=abcdef,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",  // our nonce, nothing added by the server
            "r=abcdefXYZ,i=4096",
            "r=abcdefXYZ,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0",
            "r=abcdefXYZ,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=2000000000",
            "r=abcdefXYZ,s=!!!,i=4096",
        ] {
            var client = SCRAMClient(password: Array("pw".utf8), nonce: "abcdef")
            #expect(throws: TurnkeeperError.self, "\(challenge)") {
                _ = try client.clientFinal(serverFirst: Array(challenge.utf8))
            }
        }
        // Without a challenge answered first there is nothing to verify against.
        #expect(throws: TurnkeeperError.self) {
            try SCRAMClient(password: [], nonce: "n").verify(serverFinal: Array("v=AAAA".utf8))
        }
    }

    @Test("Frontend messages: startup, a statement with bound text parameters, SSLRequest, Terminate")
    func frontend() {
        let startup = PostgresFrontend.startup(user: "coturn", database: "coturn")
        #expect(Array(startup.prefix(8)) == [0, 0, 0, UInt8(startup.count), 0, 3, 0, 0])
        #expect(String(decoding: startup.dropFirst(8), as: UTF8.self).contains("user\0coturn\0database\0coturn\0"))
        #expect(startup.last == 0)

        let statement = PostgresFrontend.statement("DELETE FROM t WHERE a = $1", parameters: ["it's"])
        let types = statement.enumerated().filter { index, _ in index == 0 }.map { $0.element }
        #expect(types == [UInt8(ascii: "P")])
        let text = String(decoding: statement, as: UTF8.self)
        #expect(text.contains("DELETE FROM t WHERE a = $1\0"))
        #expect(text.contains("it's"), "the value travels apart from the SQL, unescaped")
        #expect(Array(statement.suffix(5)) == [UInt8(ascii: "S"), 0, 0, 0, 4])
        #expect(PostgresFrontend.sslRequest == [0, 0, 0, 8, 4, 210, 22, 47])
    }

    @Test("Backend messages: authentication requests, rows with NULL, errors; partial input asks for more")
    func backend() throws {
        let sasl = message("R", [0, 0, 0, 10] + Array("SCRAM-SHA-256\0SCRAM-SHA-256-PLUS\0\0".utf8))
        let (decoded, used) = try #require(try PostgresBackend.decode(sasl[...]))
        #expect(decoded == .authentication(.sasl(mechanisms: ["SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"])))
        #expect(used == sasl.count)
        #expect(try PostgresBackend.decode(sasl.dropLast()) == nil)

        let row = message("D", [0, 2, 0, 0, 0, 1, UInt8(ascii: "t"), 0xFF, 0xFF, 0xFF, 0xFF])
        #expect(try PostgresBackend.decode(row[...])?.0 == .dataRow(["t", nil]))

        let error = message("E", Array("SERROR\0C28P01\0Mpassword authentication failed\0\0".utf8))
        guard case .error(let fields)? = try PostgresBackend.decode(error[...])?.0 else {
            Issue.record("not an error")
            return
        }
        #expect(fields[UInt8(ascii: "C")] == "28P01")

        let md5 = message("R", [0, 0, 0, 5, 1, 2, 3, 4])
        #expect(try PostgresBackend.decode(md5[...])?.0 == .authentication(.md5Password(salt: [1, 2, 3, 4])))
        #expect(try PostgresBackend.decode(message("R", [0, 0, 0, 7])[...])?.0 == .authentication(.unsupported(7)))
        #expect(try PostgresBackend.decode(message("Z", [UInt8(ascii: "I")])[...])?.0 == .readyForQuery)
    }

    @Test("Lengths a server lies about throw; they never read past the message or allocate what they claim")
    func hostileLengths() {
        let cases: [[UInt8]] = [
            [UInt8(ascii: "D"), 0, 0, 0, 3],  // shorter than its own length field
            [UInt8(ascii: "D"), 0x7F, 0xFF, 0xFF, 0xFF],  // 2 GiB
            message("D", [0, 1, 0x7F, 0xFF, 0xFF, 0xFF]),  // a column longer than the row
            message("D", [0, 1, 0xFF, 0xFF, 0xFF, 0xFE]),  // a negative length other than NULL
            message("D", [0x7F, 0xFF]),  // 32767 columns
            message("D", [0xFF, 0xFF]),  // -1 columns
            message("R", [0, 0, 0, 5, 1, 2]),  // an MD5 salt cut short
            message("R", [0, 0, 0, 10] + Array("SCRAM".utf8)),  // a mechanism without its end
            message("E", Array("SERROR".utf8)),  // a field without its end
            message("R", [0, 0]),
        ]
        for bytes in cases {
            #expect(throws: PostgresWireError.self, "\(bytes.prefix(12))") {
                _ = try PostgresBackend.decode(bytes[...])
            }
        }
    }

    @Test("Random bytes never trap the decoder (a fixed seed; the fuzzer goes further)")
    func randomInput() {
        var generator = SplitMix(seed: 0x7075_726B)
        for _ in 0..<20_000 {
            let count = Int(generator.next() % 64)
            var bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            if !bytes.isEmpty {
                bytes[0] = [UInt8(ascii: "R"), UInt8(ascii: "D"), UInt8(ascii: "E")][Int(generator.next() % 3)]
            }
            if bytes.count >= 5 { bytes[1] = 0; bytes[2] = 0 }
            if let (_, used) = try? PostgresBackend.decode(bytes[...]) { #expect(used <= bytes.count) }
        }
    }
}

private struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
