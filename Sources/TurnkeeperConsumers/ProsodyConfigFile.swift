import TurnkeeperCore
public import TurnkeeperCredentials

/// The file turnkeeper owns among Prosody's included configs (Debian: /etc/prosody/conf.d/turnkeeper.cfg.lua):
/// mod_turn_external's options and nothing else. Prosody reads every `Include`d file as root's config, so
/// each value is written as a Lua string that nothing in it can end.
public struct ProsodyConfigFile: Sendable {
    /// The first line, and how turnkeeper knows the file is its own.
    public static let marker = "-- Managed by turnkeeper: rewritten at every rotation. Change turnkeeper.yaml instead."

    /// What Prosody advertises beside the secret (`turn_external_*`).
    public struct Options: Sendable, Equatable {
        public var host: String
        public var port: Int
        public var tlsPort: Int?
        public var tcp: Bool
        public var user: String?
        public var ttlSeconds: Int64

        public init(host: String, port: Int, tlsPort: Int?, tcp: Bool, user: String?, ttlSeconds: Int64) {
            self.host = host
            self.port = port
            self.tlsPort = tlsPort
            self.tcp = tcp
            self.user = user
            self.ttlSeconds = ttlSeconds
        }
    }

    public let path: String
    public let options: Options

    public init(path: String, options: Options) {
        self.path = path
        self.options = options
    }

    /// The file's content with `secret`.
    public func render(_ secret: TurnSecret) -> [UInt8] {
        var lines = [
            Self.marker,
            "-- Global options: a turn_external_* option set under a VirtualHost in prosody.cfg.lua overrides them.",
            "turn_external_secret = " + secret.withExposedBytes { Self.luaString($0) },
            "turn_external_host = " + Self.luaString(Array(options.host.utf8)),
            "turn_external_port = \(options.port)",
            "turn_external_ttl = \(options.ttlSeconds)",
            "turn_external_tcp = \(options.tcp)",
        ]
        if let tls = options.tlsPort { lines.append("turn_external_tls_port = \(tls)") }
        if let user = options.user { lines.append("turn_external_user = " + Self.luaString(Array(user.utf8))) }
        return Array((lines.joined(separator: "\n") + "\n").utf8)
    }

    /// Whether `bytes` are a file turnkeeper wrote (only such a file is ever replaced).
    public static func isOurs(_ bytes: [UInt8]) -> Bool { bytes.starts(with: Array(marker.utf8)) }

    /// The secret a file turnkeeper wrote holds, or nil when it holds none it could have written.
    public static func secret(in bytes: [UInt8]) -> TurnSecret? {
        guard isOurs(bytes) else { return nil }
        let prefix = Array("turn_external_secret = ".utf8)
        for line in bytes.split(separator: 0x0A) where line.starts(with: prefix) {
            guard let value = parseLuaString(Array(line.dropFirst(prefix.count))) else { return nil }
            return try? TurnSecret(adopting: String(decoding: value, as: UTF8.self), source: "Prosody's file")
        }
        return nil
    }

    /// A double-quoted Lua string: letters and digits as they are, every other byte as a three-digit decimal
    /// escape, so no quote, backslash, bracket or line break can end it and no digit can join an escape.
    public static func luaString(_ bytes: [UInt8]) -> String {
        var out = "\""
        for byte in bytes {
            if (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte) {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                let digits = String(byte)
                out += "\\" + String(repeating: "0", count: 3 - digits.count) + digits
            }
        }
        return out + "\""
    }

    /// The bytes of a string ``luaString(_:)`` wrote, or nil for anything else.
    static func parseLuaString(_ text: [UInt8]) -> [UInt8]? {
        guard text.count >= 2, text.first == 0x22, text.last == 0x22 else { return nil }
        var out: [UInt8] = []
        var index = 1
        while index < text.count - 1 {
            let byte = text[index]
            if byte == 0x5C {
                guard index + 3 < text.count,
                    let value = UInt8(String(decoding: text[(index + 1)...(index + 3)], as: UTF8.self))
                else { return nil }
                out.append(value)
                index += 4
            } else {
                guard byte != 0x22 else { return nil }
                out.append(byte)
                index += 1
            }
        }
        return out
    }
}
