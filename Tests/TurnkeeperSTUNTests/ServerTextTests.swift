import TestSupport
import Testing
import TurnkeeperCore
import TurnkeeperSTUN

@Suite("Server text", .mayBlock)
struct ServerTextTests {
    /// Nothing a terminal obeys or a reader cannot see: C0, DEL, C1, format and separator characters.
    private func isInert(_ text: String) -> Bool {
        text.unicodeScalars.allSatisfy { scalar in
            switch scalar.properties.generalCategory {
            case .control, .format, .lineSeparator, .paragraphSeparator, .privateUse, .unassigned: false
            default: true
            }
        }
    }

    @Test(
        "Control, bidi and separator characters become visible escapes",
        arguments: [
            ("\u{1B}[31mred", "\\x1b[31mred"), ("a\nb\r\tc", "a\\nb\\r\\tc"), ("\u{0}\u{7F}", "\\x00\\x7f"),
            ("\u{85}\u{9B}", "\\u{0085}\\u{009B}"), ("\u{202E}txt\u{202C}", "\\u{202E}txt\\u{202C}"),
            ("\u{2028}\u{2029}\u{200B}\u{FEFF}\u{2066}", "\\u{2028}\\u{2029}\\u{200B}\\u{FEFF}\\u{2066}"),
            ("Unauthorized", "Unauthorized"), ("Grüße, 東京 ✓", "Grüße, 東京 ✓"),
            // Invalid UTF-8 was already decoded as U+FFFD, which is visible.
            ("\u{FFFD}", "\u{FFFD}"),
        ]
    )
    func escapes(raw: String, shown: String) {
        #expect(ServerText.escaped(raw) == shown)
        #expect(isInert(ServerText.escaped(raw)))
    }

    @Test("Length is bounded with an ellipsis, counting the escapes; escaping twice changes nothing")
    func bounded() {
        let long = String(repeating: "x", count: 1000)
        #expect(ServerText.escaped(long) == String(repeating: "x", count: 128) + "…")
        #expect(ServerText.escaped(String(repeating: "x", count: 128)) == String(repeating: "x", count: 128))
        // An escaped ESC is 4 scalars: 32 of them fill 128, the 33rd is cut.
        let escapes = ServerText.escaped(String(repeating: "\u{1B}", count: 40))
        #expect(escapes == String(repeating: "\\x1b", count: 32) + "…")
        // Combining marks cannot stack without bound: scalars are counted, not characters.
        let zalgo = "a" + String(repeating: "\u{301}", count: 500)
        #expect(ServerText.escaped(zalgo).unicodeScalars.count == 129)
        #expect(ServerText.escaped(long, limit: nil) == long)
        let once = ServerText.escaped("\u{1B}[2J\nAll passed\u{202E}", limit: nil)
        #expect(ServerText.escaped(once, limit: nil) == once)
    }

    @Test("An error code's description escapes and bounds the reason phrase; the raw value is kept")
    func errorCode() {
        let reason = "Bad\r\n\u{1B}[2KAll 1 target(s) passed" + String(repeating: "!", count: 300)
        let error = STUNErrorCode(code: 400, reason: reason)
        #expect(error.reason == reason)
        #expect(!error.description.contains("\n") && !error.description.contains("\u{1B}"))
        #expect(error.description.hasPrefix("400 Bad\\r\\n\\x1b[2KAll 1 target(s) passed!"))
        #expect(error.description.hasSuffix("…"))
        #expect(error.description.unicodeScalars.count == "400 ".count + 129)
    }
}
