import TestSupport
import Testing
import TurnkeeperYAML

@Suite("YAML as PyYAML reads it, bounded, never quoting the document", .mayBlock)
struct YAMLReaderTests {
    private func parse(_ text: String) throws(YAMLError) -> YAMLNode? { try YAMLReader.parse(Array(text.utf8)) }

    @Test("A repeated key is kept, and lookups see the last value, as in PyYAML")
    func repeatedKeys() throws {
        let root = try #require(try parse("a: 1\nb: x\na: 2\n"))
        #expect(root["a"]?.string == "2")
        #expect(root.mapping?.count == 3)
        #expect(root["a"]?.line == 3)
    }

    @Test("A UTF-8 byte order mark is skipped; UTF-16 and invalid UTF-8 are refused with their position")
    func encodings() throws {
        let bom = try #require(try YAMLReader.parse([0xEF, 0xBB, 0xBF] + Array("k: v\n".utf8)))
        #expect(bom["k"]?.string == "v")
        let invalid = #expect(throws: YAMLError.self) {
            try YAMLReader.parse(Array("a: 1\nb: \"x".utf8) + [0xFF] + [0x22])
        }
        #expect(invalid?.line == 2)
        #expect(invalid?.reason == "not valid UTF-8")
        #expect(throws: YAMLError.self) { try YAMLReader.parse([0xFF, 0xFE, 0x6B, 0x00]) }
    }

    @Test("Null, booleans and quoting resolve as YAML 1.1 does")
    func scalars() throws {
        let root = try #require(try parse("a: ~\nb: null\nc:\nd: 'null'\ne: yes\nf: \"no\"\ng: !!str ~\n"))
        #expect(root["a"]?.isNull == true)
        #expect(root["b"]?.isNull == true)
        #expect(root["c"]?.isNull == true)
        #expect(root["d"]?.string == "null")
        #expect(root["e"]?.scalar?.bool == true)
        #expect(root["f"]?.scalar?.bool == nil)
        #expect(root["g"]?.isNull == false)
    }

    @Test("Alias bombs of growing depth are refused at the expansion cap, without expanding them")
    func aliasBombs() throws {
        for depth in [8, 12, 20, 40] {
            var text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
            for level in 1...depth {
                let refs = Array(repeating: "*a\(level - 1)", count: 10).joined(separator: ", ")
                text += "a\(level): &a\(level) [\(refs)]\n"
            }
            let error = #expect(throws: YAMLError.self) { try parse(text) }
            #expect(error?.reason.contains("aliases expand") == true, "depth \(depth)")
        }
        // Aliases used as mapping keys, the shape that made Yams' duplicate check exponential.
        var keys = "k0: &k0 {a: 1, b: 2}\n"
        for level in 1...30 { keys += "k\(level): &k\(level) {*k\(level - 1) : 1, x: *k\(level - 1)}\n" }
        let error = #expect(throws: YAMLError.self) { try parse(keys) }
        #expect(error?.reason.contains("mapping key must be a single value") == true)
        // Modest sharing stays fine.
        let shared = try #require(try parse("base: &b {x: 1}\none: *b\ntwo: *b\n"))
        #expect(shared["two"]?["x"]?.string == "1")
    }

    @Test("Errors give the position and a fixed reason, never the document's text")
    func errorsNeverQuote() throws {
        let secret = "S3cr3tValueThatMustNotLeak"
        let cases = [
            "turn_shared_secret: \"\(secret)\u{1}\"\n",
            "turn_shared_secret: \(secret)\n  bad: [\n",
            "a: 1\n---\nturn_shared_secret: \(secret)\n",
            "turn_shared_secret: *\(secret)\n",
            "[\(secret)]: 1\n",
            "{\(secret): [a, b]\n",
        ]
        for text in cases {
            let error = #expect(throws: YAMLError.self) { try parse(text) }
            let shown = "\(error.map(\.located) ?? "")"
            #expect(!shown.contains(secret), "leaked in: \(shown.count) characters")
            #expect(error?.line ?? 0 >= 1)
        }
    }

    @Test("Depth and size are capped")
    func limits() throws {
        let deep = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
        #expect(throws: YAMLError.self) { try parse(deep) }
        let big = Array(repeating: UInt8(ascii: "a"), count: 100)
        #expect(throws: YAMLError.self) { try YAMLReader.parse(big, limits: .init(maximumBytes: 50)) }
        #expect(try parse("") == nil)
        #expect(try parse("# only a comment\n") == nil)
    }
}
