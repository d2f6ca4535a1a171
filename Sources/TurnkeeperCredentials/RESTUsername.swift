public import TurnkeeperCore

/// The `<expiry>:<user>` usernames of TURN REST credentials, read the way coturn 4.6.1 reads them.
public enum RESTUsername {
    /// Checks that coturn will take `user` as the user part of a username.
    /// coturn answers 400 to usernames holding spaces, tabs, quotes, backslashes or line breaks.
    public static func validate(user: String, source: String = "--user") throws(TurnkeeperError) {
        guard !user.isEmpty else {
            throw TurnkeeperError(
                .invalidArgument, "\(source) is empty. Give a Matrix user ID such as @alice:example.org.")
        }
        for byte in user.utf8 {
            let what: String? =
                switch byte {
                case 0x20: "a space"
                case 0x09: "a tab"
                case 0x0A, 0x0D: "a line break"
                case UInt8(ascii: "\""), UInt8(ascii: "'"): "a quote"
                case UInt8(ascii: "\\"): "a backslash"
                case 0x00..<0x20, 0x7F: "a control character"
                default: nil
                }
            if let what {
                throw TurnkeeperError(
                    .invalidArgument,
                    "\(source) holds \(what); coturn answers 400 Bad Request to such usernames. "
                        + "Give a Matrix user ID such as @alice:example.org."
                )
            }
        }
    }

    /// The last expiry coturn 4.6.1 accepts: it reads the timestamp as a signed 32-bit number, so
    /// 2038-01-19 03:14:08 UTC and later read as long expired (measured, not in REFERENCE.md).
    public static let latestExpiryCoturnAccepts: Int64 = Int64(Int32.max)

    /// `<expiry>:<user>`, as Synapse formats it.
    public static func make(expiry: Int64, user: String) -> String {
        "\(expiry):\(user)"
    }

    /// The expiry (Unix seconds) coturn reads from `username`: the part before the first `:` when it is
    /// all digits, else the part after it; a username without `:` is a bare timestamp. Like coturn's
    /// `strtoul`, leading digits count and no digits read as 0, which is long expired.
    public static func expiry(of username: String) -> Int64 {
        let bytes = Array(username.utf8)
        var part = bytes[...]
        if let colon = bytes.firstIndex(of: UInt8(ascii: ":")) {
            let before = bytes[..<colon]
            let isTimestamp =
                !before.isEmpty && before.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
            part = isTimestamp ? before : bytes[(colon + 1)...]
        }
        var value: Int64 = 0
        for byte in part {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { break }
            let (times10, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(Int64(byte - UInt8(ascii: "0")))
            if o1 || o2 { return Int64.max }
            value = sum
        }
        return value
    }
}
