public import TurnkeeperCore
public import TurnkeeperCredentials

/// The `static-auth-secret` lines of turnserver.conf. Only those lines change; every other byte (comments,
/// order, line endings, bytes that are not UTF-8) is kept. coturn reads its config only at start, so a change
/// needs a restart, and a restart drops every call in progress: prefer the SQLite store.
///
/// The file is read as coturn 4.6.1 reads it (read_config_file in src/apps/relay/mainrelay.c), on bytes:
/// `fgets` into a 1024-byte buffer, so a line is whatever ends with LF, and a line longer than 1023 bytes
/// is read as several lines of up to 1023 bytes each; leading spaces, tabs and LFs are skipped; `#` then
/// starts a comment; trailing white space (CR included) is stripped; a NUL ends the line.
public struct CoturnConfigStore: Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    /// What one `fgets` of coturn returns: the bytes exactly as in the file, and the option they set.
    public struct Line: Sendable {
        /// The raw bytes, terminator included: all lines joined give the file back byte for byte.
        public let bytes: [UInt8]
        /// The line of the file it starts on (1-based); a long line's later pieces share its number.
        public let number: Int
        /// The option's name, or nil for a comment or a blank line.
        public let name: String?
        /// The value as coturn takes it, or nil when there is none (a bare flag).
        public let value: [UInt8]?

        /// The value as text, when it is UTF-8.
        public var text: String? { value.flatMap { String(validating: $0, as: UTF8.self) } }

        /// How the line ends: CR LF, LF, or nothing (the last line, or a piece of a long line).
        var terminator: [UInt8] {
            if bytes.last != 0x0A { return [] }
            return bytes.count >= 2 && bytes[bytes.count - 2] == 0x0D ? [0x0D, 0x0A] : [0x0A]
        }
    }

    /// coturn's buffer is 1025 bytes, of which it lets `fgets` fill 1024: at most 1023 bytes and a NUL.
    public static let lineLimit = 1023

    public static func parse(_ bytes: [UInt8]) -> [Line] {
        var lines: [Line] = []
        var start = 0
        var number = 1
        while start < bytes.count {
            var end = start
            while end < bytes.count && end - start < lineLimit {
                end += 1
                if bytes[end - 1] == 0x0A { break }
            }
            let raw = Array(bytes[start..<end])
            let (name, value) = interpret(raw)
            lines.append(Line(bytes: raw, number: number, name: name, value: value))
            if raw.last == 0x0A { number += 1 }
            start = end
        }
        return lines
    }

    /// One line as coturn's read_config_file and parse_arg_string see it.
    static func interpret(_ raw: [UInt8]) -> (name: String?, value: [UInt8]?) {
        // C strings: a NUL ends the line.
        var line = raw.prefix { $0 != 0 }[...]
        line = line.drop { $0 == 0x20 || $0 == 0x09 || $0 == 0x0A }  // skip_blanks
        guard let first = line.first, first != UInt8(ascii: "#") else { return (nil, nil) }
        // isspace in the C locale: space, \t, \n, \v, \f, \r.
        while let last = line.last, last == 0x20 || (0x09...0x0D).contains(last) { line = line.dropLast() }
        guard !line.isEmpty else { return (nil, nil) }
        let separator: (UInt8) -> Bool = { $0 == 0x20 || $0 == UInt8(ascii: "=") || $0 == 0x09 }
        let nameEnd = line.firstIndex(where: separator) ?? line.endIndex
        var value = line[nameEnd...].drop(while: separator)
        // A leading quote is dropped; then trailing white space, then one closing quote if there is one.
        if value.first == UInt8(ascii: "\"") {
            value = value.dropFirst()
            while let last = value.last, [0x0A, 0x0D, 0x20, 0x09].contains(last) { value = value.dropLast() }
            if value.last == UInt8(ascii: "\"") { value = value.dropLast() }
        }
        let name = String(decoding: line[..<nameEnd], as: UTF8.self)
        return (name, value.isEmpty ? nil : Array(value))
    }

    private func load() throws(TurnkeeperError) -> [Line] {
        Self.parse(try FileContents.read(path, limit: 1 << 20).bytes)
    }

    /// The static-auth-secret lines, each with its line number.
    public func secretLines() throws(TurnkeeperError) -> [(line: Int, secret: TurnSecret)] {
        try Self.secretLines(in: try load(), path: path)
    }

    public static func secretLines(in lines: [Line], path: String) throws(TurnkeeperError) -> [(
        line: Int, secret: TurnSecret
    )] {
        var secrets: [(line: Int, secret: TurnSecret)] = []
        for line in lines where line.name == "static-auth-secret" {
            guard line.value != nil else {
                throw TurnkeeperError(.unreadableFile, "\(path), line \(line.number): static-auth-secret has no value.")
            }
            guard let text = line.text else {
                throw TurnkeeperError(
                    .unreadableFile,
                    "\(path), line \(line.number): static-auth-secret is not UTF-8, so Synapse cannot sign with it. "
                        + "Replace it with a secret from `turnkeeper secret generate`.")
            }
            secrets.append((line.number, try TurnSecret(adopting: text, source: "\(path), line \(line.number)")))
        }
        return secrets
    }

    /// The secrets coturn will accept after its next start.
    public func secrets() throws(TurnkeeperError) -> [TurnSecret] {
        try secretLines().map(\.secret)
    }

    /// Replaces the static-auth-secret lines with `secrets`, where the first one stood (or after
    /// use-auth-secret), ending each with the line ending already used there. Requires use-auth-secret and
    /// realm, and refuses lt-cred-mech beside them.
    public func setSecrets(_ secrets: [TurnSecret]) throws(TurnkeeperError) {
        // One line each, with nothing coturn's parser would strip or split: printable ASCII, no quote, no space.
        for secret in secrets where secret.withExposedBytes({ $0.contains { $0 <= 0x20 || $0 >= 0x7F || $0 == 0x22 } })
        {
            throw TurnkeeperError(
                .invalidSecret,
                "secret \(secret.fingerprint) holds a space, a quote or a character outside printable ASCII, which "
                    + "turnserver.conf cannot hold; nothing was written. Give Synapse a secret from `turnkeeper secret "
                    + "generate`.")
        }
        let lines = try load()
        let names = Set(lines.compactMap(\.name))
        var missing: [String] = []
        if !names.contains("use-auth-secret") { missing.append("use-auth-secret") }
        if !lines.contains(where: { $0.name == "realm" && $0.value != nil }) {
            missing.append("realm=<your TURN realm>")
        }
        guard missing.isEmpty else {
            throw TurnkeeperError(
                .unreadableFile,
                "\(path) lacks \(missing.joined(separator: " and ")), without which coturn ignores static-auth-secret; "
                    + "nothing was written. Add \(missing.map { "`\($0)`" }.joined(separator: " and ")) and try again."
            )
        }
        if let line = lines.first(where: { $0.name == "lt-cred-mech" }) {
            throw TurnkeeperError(
                .unreadableFile,
                "\(path), line \(line.number): lt-cred-mech is mixed with use-auth-secret, and coturn then rejects "
                    + "Synapse's credentials; nothing was written. Remove the lt-cred-mech line."
            )
        }
        // use-auth-secret is there (checked above).
        let anchor =
            lines.firstIndex { $0.name == "static-auth-secret" } ?? lines.firstIndex { $0.name == "use-auth-secret" }!
        let replacing = lines[anchor].name == "static-auth-secret"
        // The file's own line ending: the anchor's, else the first one in the file, else LF.
        let fileEnding = lines.first { !$0.terminator.isEmpty }?.terminator ?? [0x0A]
        let ending = lines[anchor].terminator.isEmpty ? fileEnding : lines[anchor].terminator
        var rendered: [UInt8] = []
        for secret in secrets {
            secret.withExposedBytes { rendered += Array("static-auth-secret=".utf8) + $0 + ending }
        }
        var output: [UInt8] = []
        for (index, line) in lines.enumerated() {
            if line.name == "static-auth-secret" {
                if index == anchor { output += rendered }
                continue
            }
            output += line.bytes
            if index == anchor && !replacing {
                // After a last line without an ending, or a piece of a long line: start a line of our own.
                if line.terminator.isEmpty && !rendered.isEmpty { output += ending }
                output += rendered
            }
        }
        // It now holds secrets: a world-readable turnserver.conf is narrowed to 0640, as a secret file is.
        try AtomicFile.write(output, to: path, permissions: 0o640, maximumPermissions: 0o640, existing: .replace)
    }
}
