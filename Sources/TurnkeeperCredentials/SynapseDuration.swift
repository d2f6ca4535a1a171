public import TurnkeeperCore

/// Durations as Synapse's `parse_duration` reads them: `30s`, `30m`, `1h`, `1d`, `1w`, `1y`,
/// or a bare number of milliseconds. Used for `--ttl` and for `turn_user_lifetime`.
public struct SynapseDuration: Sendable, Hashable, CustomStringConvertible {
    public let milliseconds: Int64

    public init(milliseconds: Int64) {
        self.milliseconds = milliseconds
    }

    /// Whole seconds, as Synapse reports `ttl` (`lifetime // 1000`).
    public var seconds: Int64 { milliseconds / 1000 }

    public var description: String { "\(milliseconds)ms" }

    public static func seconds(_ n: Int64) -> SynapseDuration { .init(milliseconds: n * 1000) }
    public static func minutes(_ n: Int64) -> SynapseDuration { .init(milliseconds: n * 60_000) }
    public static func hours(_ n: Int64) -> SynapseDuration { .init(milliseconds: n * 3_600_000) }
    public static func days(_ n: Int64) -> SynapseDuration { .init(milliseconds: n * 86_400_000) }

    /// The shortest text that parses back to this duration: "7d", "10m", "1500" (milliseconds).
    public var text: String {
        for (suffix, size) in [
            ("y", Int64(31_536_000_000)), ("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000),
            ("m", 60_000), ("s", 1000),
        ]
        where milliseconds % size == 0 {
            return "\(milliseconds / size)\(suffix)"
        }
        return "\(milliseconds)"
    }

    private static let units: [UInt8: Int64] = [
        UInt8(ascii: "s"): 1000,
        UInt8(ascii: "m"): 60_000,
        UInt8(ascii: "h"): 3_600_000,
        UInt8(ascii: "d"): 86_400_000,
        UInt8(ascii: "w"): 604_800_000,
        UInt8(ascii: "y"): 31_536_000_000,
    ]

    /// Parses `text`. Stricter than Synapse where Synapse would accept nonsense: no sign, no
    /// spaces, no zero (Synapse then answers `{}` and calls lose TURN), no overflow.
    /// `source` names the option or file in the error.
    public init(parsing text: String, source: String = "the duration") throws(TurnkeeperError) {
        var digits = Array(text.utf8)
        var unit: Int64 = 1
        if let last = digits.last, let size = Self.units[last] {
            unit = size
            digits.removeLast()
        }
        // A short value that looks like a duration is shown; anything else may be a secret pasted under the wrong key.
        let shown =
            text.utf8.count <= 12
                && text.utf8.allSatisfy({
                    ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x41 && $0 <= 0x5A)
                        || $0 == 0x2E || $0 == 0x2D || $0 == 0x2B
                })
            ? " \"\(text)\"" : ""
        let example =
            "Use a whole number with s, m, h, d, w or y (\"30m\", \"1h\", \"1d\"), or a bare number of milliseconds."
        guard !digits.isEmpty, digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            throw TurnkeeperError(.invalidArgument, "\(source)\(shown) is not a duration. \(example)")
        }
        var value: Int64 = 0
        for digit in digits {
            let (times10, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(Int64(digit - UInt8(ascii: "0")))
            guard !overflow1, !overflow2 else {
                throw TurnkeeperError(.invalidArgument, "\(source)\(shown) is too long a duration. \(example)")
            }
            value = sum
        }
        let (milliseconds, overflow) = value.multipliedReportingOverflow(by: unit)
        guard !overflow, milliseconds <= 100 * Self.units[UInt8(ascii: "y")]! else {
            throw TurnkeeperError(.invalidArgument, "\(source)\(shown) is too long a duration. \(example)")
        }
        guard milliseconds >= 1000 else {
            throw TurnkeeperError(
                .invalidArgument,
                "\(source)\(shown) is under one second (a bare number means milliseconds, as in Synapse), "
                    + "and turnkeeper counts in whole seconds. \(example)"
            )
        }
        self.milliseconds = milliseconds
    }
}
