/// Redis's wire format (RESP2), just what the secret store needs: commands out as arrays of bulk strings,
/// replies in as any RESP2 value. Pure: no I/O, and malformed or hostile input throws, never traps.
public enum RESPValue: Sendable, Equatable {
    case simple(String)
    case error(String)
    case integer(Int64)
    case bulk([UInt8]?)
    case array([RESPValue]?)
}

public struct RESPError: Error, Sendable, CustomStringConvertible {
    public let description: String

    public init(description: String) { self.description = description }
}

public enum RESP {
    /// `*N\r\n$len\r\narg\r\n…`
    public static func command(_ arguments: [[UInt8]]) -> [UInt8] {
        var bytes = Array("*\(arguments.count)\r\n".utf8)
        for argument in arguments {
            bytes += Array("$\(argument.count)\r\n".utf8) + argument + [13, 10]
        }
        return bytes
    }

    /// Replies larger than this are refused: a secret set never comes near it.
    public static let limit = 1 << 20

    /// One reply from the start of `bytes`, and how many bytes it took; nil when more bytes are needed.
    public static func decode(_ bytes: [UInt8]) throws(RESPError) -> (RESPValue, Int)? {
        var offset = 0
        guard let value = try decode(bytes, &offset, depth: 0) else { return nil }
        return (value, offset)
    }

    private static func line(_ bytes: [UInt8], _ offset: inout Int) throws(RESPError) -> [UInt8]? {
        var index = offset
        while index + 1 < bytes.count {
            if bytes[index] == 13 {
                guard bytes[index + 1] == 10 else { throw RESPError(description: "a CR without LF") }
                let line = Array(bytes[offset..<index])
                offset = index + 2
                return line
            }
            index += 1
            if index - offset > 64 * 1024 { throw RESPError(description: "a header line longer than 64 KiB") }
        }
        return nil
    }

    private static func number(_ line: [UInt8]) throws(RESPError) -> Int64 {
        guard let value = Int64(String(decoding: line, as: UTF8.self)) else {
            throw RESPError(description: "not a number: \(String(decoding: line.prefix(32), as: UTF8.self))")
        }
        return value
    }

    private static func decode(_ bytes: [UInt8], _ offset: inout Int, depth: Int) throws(RESPError) -> RESPValue? {
        guard depth < 8 else { throw RESPError(description: "arrays nested more than 8 deep") }
        guard offset < bytes.count else { return nil }
        let kind = bytes[offset]
        var cursor = offset + 1
        guard let header = try line(bytes, &cursor) else { return nil }
        let value: RESPValue
        switch kind {
        case UInt8(ascii: "+"): value = .simple(String(decoding: header, as: UTF8.self))
        case UInt8(ascii: "-"): value = .error(String(decoding: header, as: UTF8.self))
        case UInt8(ascii: ":"): value = .integer(try number(header))
        case UInt8(ascii: "$"):
            let length = try number(header)
            if length == -1 {
                value = .bulk(nil)
            } else {
                guard (0...Int64(limit)).contains(length) else { throw RESPError(description: "bulk length \(length)") }
                let end = cursor + Int(length)
                guard end + 2 <= bytes.count else { return nil }
                guard bytes[end] == 13, bytes[end + 1] == 10 else {
                    throw RESPError(description: "a bulk string not ended by CRLF")
                }
                value = .bulk(Array(bytes[cursor..<end]))
                cursor = end + 2
            }
        case UInt8(ascii: "*"):
            let count = try number(header)
            if count == -1 {
                value = .array(nil)
            } else {
                guard (0...65_536).contains(count) else { throw RESPError(description: "array length \(count)") }
                var elements: [RESPValue] = []
                for _ in 0..<count {
                    guard let element = try decode(bytes, &cursor, depth: depth + 1) else { return nil }
                    elements.append(element)
                }
                value = .array(elements)
            }
        default:
            throw RESPError(description: "unknown reply type byte \(kind)")
        }
        offset = cursor
        return value
    }
}
