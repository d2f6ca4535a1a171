/// Text a server chose (a reason phrase, REALM, SOFTWARE, a certificate's names), made safe to print.
///
/// A terminal obeys escape sequences, a line break starts a line that looks like our own output, and a
/// bidi override reorders what follows it. So every control, format and separator character is shown as
/// an escape (`\x1b`, `\n`, `\u{202E}`), and the text is cut to a bounded length with an ellipsis.
/// Backslashes are left alone, so escaping twice changes nothing.
public enum ServerText {
    /// Unicode scalars kept before the ellipsis: RFC 8489 bounds a reason phrase at 128 characters.
    public static let defaultLimit = 128

    /// `text` with invisible and layout-changing characters escaped; with `limit`, at most that many
    /// scalars of the result are kept and "…" marks the cut.
    public static func escaped(_ text: some StringProtocol, limit: Int? = defaultLimit) -> String {
        var output = ""
        var kept = 0
        for scalar in text.unicodeScalars {
            let piece = visible(scalar)
            let length = piece.unicodeScalars.count
            if let limit, kept + length > limit { return output + "…" }
            output += piece
            kept += length
        }
        return output
    }

    private static func visible(_ scalar: Unicode.Scalar) -> String {
        switch scalar.value {
        case 0x0A: return "\\n"
        case 0x0D: return "\\r"
        case 0x09: return "\\t"
        case 0x00..<0x20, 0x7F: return "\\x" + hex(scalar.value, width: 2, uppercase: false)
        default: break
        }
        switch scalar.properties.generalCategory {
        // C1 controls, bidi marks and overrides, zero-width characters, line and paragraph separators,
        // and code points with no meaning yet: none of them should reach a terminal unseen.
        case .control, .format, .lineSeparator, .paragraphSeparator, .surrogate, .privateUse, .unassigned:
            return "\\u{" + hex(scalar.value, width: 4, uppercase: true) + "}"
        default:
            return String(scalar)
        }
    }

    private static func hex(_ value: UInt32, width: Int, uppercase: Bool) -> String {
        let digits = String(value, radix: 16, uppercase: uppercase)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}
