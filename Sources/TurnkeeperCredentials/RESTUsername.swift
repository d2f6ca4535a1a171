public import TurnkeeperCore

/// The `<expiry>:<user>` usernames of TURN REST credentials, read the way coturn 4.6.1 reads them.
public enum RESTUsername {
    /// The longest username coturn 4.6.1 takes, in bytes. It copies USERNAME into a buffer of
    /// STUN_MAX_USERNAME_SIZE (512) bytes and drops the rest, so the HMAC of a longer username never
    /// matches. Measured against a real coturn 4.6.1 (TURNClientTests, "coturn's username limit"):
    /// a 512-byte username allocates, a 513-byte one is refused with 401.
    public static let maximumUsernameBytes = 512

    /// The longest user ID, in bytes, whose `<expiry>:<user>` coturn takes: 512 less a 10-digit expiry
    /// (every expiry coturn accepts, up to 2038, has 10 digits) and the colon, so 501.
    public static let maximumUserBytes = maximumUsernameBytes - 11

    /// Checks that coturn will take `user` as the user part of a username: not empty, at most
    /// ``maximumUserBytes`` bytes, and nothing coturn answers 400 to (see ``refusedContent(in:)``).
    public static func validate(user: String, source: String = "--user") throws(TurnkeeperError) {
        guard !user.isEmpty else {
            throw TurnkeeperError(
                .invalidArgument, "\(source) is empty. Give a Matrix user ID such as @alice:example.org.")
        }
        guard user.utf8.count <= maximumUserBytes else {
            throw TurnkeeperError(
                .invalidArgument,
                "\(source) is \(user.utf8.count) bytes long; coturn takes usernames (<expiry>:<user>) of at most "
                    + "\(maximumUsernameBytes) bytes, so a user ID may have at most \(maximumUserBytes) bytes. "
                    + "Give a shorter user ID."
            )
        }
        if let what = refusedContent(in: user) {
            throw TurnkeeperError(
                .invalidArgument,
                "\(source) holds \(what); coturn answers 400 Bad Request to such usernames. "
                    + "Give a Matrix user ID such as @alice:example.org."
            )
        }
    }

    /// What coturn would refuse in a whole username (a credential a client got), in words; nil when nothing.
    public static func problem(username: String) -> String? {
        if username.utf8.count > maximumUsernameBytes {
            return "is \(username.utf8.count) bytes long, and coturn reads at most \(maximumUsernameBytes) bytes of a "
                + "username (so a user ID may have at most \(maximumUserBytes) bytes)"
        }
        return refusedContent(in: username).map { "holds \($0), which coturn refuses with 400 Bad Request" }
    }

    /// What coturn's `is_secure_string` refuses, in words: a space, tab, quote, backslash or line break,
    /// or both "union" and "select" in any case (its guard against SQL injection). Other control
    /// characters are refused too: a NUL would cut the username short.
    static func refusedContent(in text: String) -> String? {
        for byte in text.utf8 {
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
            if let what { return what }
        }
        let lowered = String(decoding: text.utf8.map { (0x41...0x5A).contains($0) ? $0 + 0x20 : $0 }, as: UTF8.self)
        if lowered.contains("union") && lowered.contains("select") { return "both \"union\" and \"select\"" }
        return nil
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
