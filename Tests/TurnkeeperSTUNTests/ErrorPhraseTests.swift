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
