import Foundation
import TestSupport
import Testing

/// coturn judges expiry by the TURN host's clock. A real coturn run with its wall clock shifted (libfaketime):
/// `check` measures the shift through the earliest expiry coturn grants, and judges it against the lifetime
/// Synapse really uses.
@Suite("A TURN host whose clock is off", .mayBlock, .tags(.live))
struct ClockSkewTests {
    /// The offset `check` reports, and its output, for a coturn `offset` s off and Synapse's `lifetime`.
    static func check(offset: Int64, lifetime: String) throws -> (
        measured: Int64?, output: ProcessOutput, coturnLog: String
    ) {
        var options = TurnkeeperDeployment.Options()
        options.coturn.clockOffsetSeconds = offset
        options.turnUserLifetime = lifetime
        let deployment = try TurnkeeperDeployment(options)
        defer { deployment.stop() }
        // The first run adopts Synapse's secret into coturn's database.
        let adopted = try deployment.run(["rotate", "--resume"])
        guard adopted.status == 0 else { throw TestFailure("adoption failed: \(adopted)") }
        let output = try deployment.run(["check"])
        let pattern = /runs on a clock (\d+) s (ahead|behind)/
        let measured = output.stdout.firstMatch(of: pattern).map { match in
            (Int64(match.output.1) ?? 0) * (match.output.2 == "ahead" ? 1 : -1)
        }
        // coturn's own words for a refusal the measurement did not expect.
        return (measured, output, String(deployment.coturn.log.suffix(3000)))
    }

    @Test("8 s ahead with 4 s credentials: every credential refused, named with the host and the seconds")
    func aheadBeyondLifetime() throws {
        let (measured, output, log) = try Self.check(offset: 8, lifetime: "4s")
        #expect(output.status == 1, "\(output)")
        #expect(output.stdout.contains("has already expired there"), "\(output)")
        let value = try #require(measured, "\(output)\ncoturn's log:\n\(log)")
        #expect(abs(value - 8) <= 2, "measured \(value)")
    }

    @Test("8 s ahead with 1 h credentials: said, and not a problem")
    func aheadWithinLifetime() throws {
        let (measured, output, log) = try Self.check(offset: 8, lifetime: "1h")
        #expect(output.status == 0, "\(output)")
        let value = try #require(measured, "\(output)\ncoturn's log:\n\(log)")
        #expect(abs(value - 8) <= 2, "measured \(value)")
    }

    @Test("700 s ahead with 10 min credentials: the clock is named as the cause, not the secret")
    func aheadPastTenMinutes() throws {
        let (measured, output, _) = try Self.check(offset: 700, lifetime: "10m")
        #expect(output.status == 1)
        #expect(output.stdout.contains("has already expired there"), "\(output)")
        #expect(!output.stdout.contains("does not accept the secret Synapse uses"), "\(output)")
        #expect(abs((measured ?? 0) - 700) <= 2, "\(output)")
    }

    @Test("700 s behind: credentials live longer there, which refuses none")
    func behind() throws {
        let (measured, output, _) = try Self.check(offset: -700, lifetime: "1h")
        #expect(output.status == 0, "\(output)")
        #expect(abs((measured ?? 0) + 700) <= 2, "\(output)")
    }
}
