import TestSupport
import Testing
import TurnkeeperCore
import TurnkeeperCredentials

@Suite("Synapse durations", .mayBlock)
struct SynapseDurationTests {
    @Test(
        "Synapse's suffixes, and bare numbers as milliseconds",
        arguments: [
            ("1s", 1000), ("30m", 1_800_000), ("1h", 3_600_000), ("1d", 86_400_000), ("1w", 604_800_000),
            ("1y", 31_536_000_000), ("86400000", 86_400_000), ("1000", 1000), ("90s", 90_000),
        ] as [(String, Int64)]
    )
    func parses(text: String, milliseconds: Int64) throws {
        #expect(try SynapseDuration(parsing: text).milliseconds == milliseconds)
    }

    @Test("ttl is whole seconds, as Synapse's lifetime // 1000")
    func seconds() {
        #expect(SynapseDuration(milliseconds: 3_600_999).seconds == 3600)
    }

    @Test(
        "Nonsense, zero, sub-second and huge durations are refused with an example",
        arguments: [
            "", "h", "-1h", "+1h", "1.5h", "1 h", " 1h", "1ms", "1H", "0", "0h", "999", "101y", "99999999999999999999",
        ]
    )
    func refused(text: String) {
        #expect {
            try SynapseDuration(parsing: text, source: "--ttl")
        } throws: { error in
            guard let error = error as? TurnkeeperError else { return false }
            return error.code == .invalidArgument && error.reason.contains("--ttl") && error.reason.contains("\"1h\"")
        }
    }
}
