/// PostgreSQL's frontend/backend protocol 3.0, as much as coturn's secret store needs: log in (cleartext, MD5,
/// SCRAM-SHA-256), run a statement with bound text parameters, read text rows. No I/O; every length a server
/// sends is checked before it is used (fuzzed).
public enum PostgresFrontend {
    /// Asks the server to switch to TLS; it answers with one byte, `S` or `N`.
    public static let sslRequest: [UInt8] = [0, 0, 0, 8, 0x04, 0xD2, 0x16, 0x2F]

    public static func startup(user: String, database: String) -> [UInt8] {
        var body: [UInt8] = [0, 3, 0, 0]  // protocol 3.0
        for (key, value) in [("user", user), ("database", database), ("application_name", "turnkeeper")] {
            body += Array(key.utf8) + [0] + Array(value.utf8) + [0]
        }
        body.append(0)
        return int32(body.count + 4) + body
    }

    /// A PasswordMessage: the cleartext password, or MD5's "md5…" answer.
    public static func password(_ text: [UInt8]) -> [UInt8] { message("p", text + [0]) }

    public static func saslInitialResponse(mechanism: String, data: [UInt8]) -> [UInt8] {
        message("p", Array(mechanism.utf8) + [0] + int32(data.count) + data)
    }

    public static func saslResponse(_ data: [UInt8]) -> [UInt8] { message("p", data) }

    /// Parse, Bind (every parameter and result as text), Execute and Sync: one statement, values never in the SQL.
    public static func statement(_ sql: String, parameters: [String]) -> [UInt8] {
        var bind: [UInt8] = [0, 0] + int16(0) + int16(parameters.count)
        for parameter in parameters { bind += int32(parameter.utf8.count) + Array(parameter.utf8) }
        bind += int16(0)
        return message("P", [0] + Array(sql.utf8) + [0] + int16(0)) + message("B", bind)
            + message("E", [0] + int32(0)) + message("S", [])
    }

    public static let terminate: [UInt8] = [UInt8(ascii: "X"), 0, 0, 0, 4]

    static func message(_ type: Unicode.Scalar, _ body: [UInt8]) -> [UInt8] {
        [UInt8(ascii: type)] + int32(body.count + 4) + body
    }

    static func int32(_ value: Int) -> [UInt8] {
        let value = UInt32(truncatingIfNeeded: value)
        return [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
    }

    static func int16(_ value: Int) -> [UInt8] {
        let value = UInt16(truncatingIfNeeded: value)
        return [UInt8(value >> 8), UInt8(value & 0xFF)]
    }
}

/// A message from the server.
public enum PostgresBackend: Sendable, Equatable {
    case authentication(Authentication)
    case readyForQuery
    /// ErrorResponse: field code → text (`C` SQLSTATE, `M` message, `S` severity …).
    case error([UInt8: String])
    /// One row, each column as text or NULL.
    case dataRow([String?])
    case commandComplete
    /// ParameterStatus, BackendKeyData, NoticeResponse, ParseComplete, BindComplete and the like: nothing to do.
    case ignored(UInt8)

    public enum Authentication: Sendable, Equatable {
        case ok
        case cleartextPassword
        case md5Password(salt: [UInt8])
        case sasl(mechanisms: [String])
        case saslContinue([UInt8])
        case saslFinal([UInt8])
        /// Kerberos, GSSAPI, SSPI and anything newer: not spoken here.
        case unsupported(Int)
    }

    /// The longest message accepted; coturn's rows are a few dozen bytes.
    public static let limit = 1 << 20

    /// The first message in `bytes` and how many bytes it used, or nil when more bytes are needed.
    public static func decode(_ bytes: ArraySlice<UInt8>) throws(PostgresWireError) -> (PostgresBackend, Int)? {
        guard bytes.count >= 5 else { return nil }
        let start = bytes.startIndex
        let type = bytes[start]
        let length = Int(readInt32(bytes, at: start + 1))
        guard length >= 4, length <= limit else { throw PostgresWireError("a message of length \(length)") }
        guard bytes.count >= 1 + length else { return nil }
        var body = Reader(bytes[(start + 5)..<(start + 1 + length)])
        let message: PostgresBackend
        switch type {
        case UInt8(ascii: "R"): message = .authentication(try authentication(&body))
        case UInt8(ascii: "Z"): message = .readyForQuery
        case UInt8(ascii: "E"): message = .error(try fields(&body))
        case UInt8(ascii: "D"): message = .dataRow(try row(&body))
        case UInt8(ascii: "C"): message = .commandComplete
        default: message = .ignored(type)
        }
        return (message, 1 + length)
    }

    static func authentication(_ body: inout Reader) throws(PostgresWireError) -> Authentication {
        let code = try body.int32()
        switch code {
        case 0: return .ok
        case 3: return .cleartextPassword
        case 5: return .md5Password(salt: try body.bytes(4))
        case 10:
            var mechanisms: [String] = []
            while true {
                let name = try body.cString()
                if name.isEmpty { break }
                guard mechanisms.count < 16 else { throw PostgresWireError("too many SASL mechanisms") }
                mechanisms.append(name)
            }
            return .sasl(mechanisms: mechanisms)
        case 11: return .saslContinue(body.rest())
        case 12: return .saslFinal(body.rest())
        default: return .unsupported(Int(code))
        }
    }

    static func fields(_ body: inout Reader) throws(PostgresWireError) -> [UInt8: String] {
        var fields: [UInt8: String] = [:]
        while true {
            let code = try body.byte()
            if code == 0 { return fields }
            fields[code] = try body.cString()
        }
    }

    static func row(_ body: inout Reader) throws(PostgresWireError) -> [String?] {
        let count = Int(try body.int16())
        // 1600: PostgreSQL's own maximum.
        guard (0...1600).contains(count) else { throw PostgresWireError("a row of \(count) columns") }
        var columns: [String?] = []
        for _ in 0..<count {
            let length = try body.int32()
            if length == -1 {
                columns.append(nil)
                continue
            }
            guard length >= 0 else { throw PostgresWireError("a column of length \(length)") }
            columns.append(String(decoding: try body.bytes(Int(length)), as: UTF8.self))
        }
        return columns
    }

    static func readInt32(_ bytes: ArraySlice<UInt8>, at index: Int) -> Int32 {
        Int32(
            bitPattern: UInt32(bytes[index]) << 24 | UInt32(bytes[index + 1]) << 16 | UInt32(bytes[index + 2]) << 8
                | UInt32(bytes[index + 3]))
    }
}

/// A message the server sent does not follow the protocol.
public struct PostgresWireError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = "a malformed reply: " + description }
}

/// Reads a message body front to back, never past its end.
struct Reader {
    private var bytes: ArraySlice<UInt8>

    init(_ bytes: ArraySlice<UInt8>) { self.bytes = bytes }

    mutating func byte() throws(PostgresWireError) -> UInt8 {
        guard let first = bytes.popFirst() else { throw PostgresWireError("a message cut short") }
        return first
    }

    mutating func bytes(_ count: Int) throws(PostgresWireError) -> [UInt8] {
        guard count >= 0, bytes.count >= count else { throw PostgresWireError("a message cut short") }
        defer { bytes = bytes.dropFirst(count) }
        return Array(bytes.prefix(count))
    }

    mutating func int16() throws(PostgresWireError) -> Int16 {
        let raw = try bytes(2)
        return Int16(bitPattern: UInt16(raw[0]) << 8 | UInt16(raw[1]))
    }

    mutating func int32() throws(PostgresWireError) -> Int32 {
        let raw = try bytes(4)
        return PostgresBackend.readInt32(raw[...], at: 0)
    }

    mutating func cString() throws(PostgresWireError) -> String {
        guard let end = bytes.firstIndex(of: 0) else { throw PostgresWireError("a string without its end") }
        defer { bytes = bytes[(end + 1)...] }
        return String(decoding: bytes[..<end], as: UTF8.self)
    }

    mutating func rest() -> [UInt8] {
        defer { bytes = bytes.suffix(0) }
        return Array(bytes)
    }
}
