public import TurnkeeperCore
public import TurnkeeperCredentials

/// The `static-auth-secret` lines of turnserver.conf. Only those lines change; every other byte (comments,
/// order, other options) is kept. coturn reads its config only at start, so a change needs a restart, and
/// a restart drops every call in progress: prefer the SQLite store.
public struct CoturnConfigStore: Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    /// A parsed line: coturn's syntax is `name=value`, `name value` or a bare flag; no inline comments.
    public struct Line: Sendable {
        public let text: String
        public let name: String?
        public let value: String?
    }

    public static func parse(_ text: String) -> [Line] {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { raw in
            let line = String(raw)
            let trimmed = line.drop { $0 == " " || $0 == "\t" }
            guard !trimmed.isEmpty, !trimmed.hasPrefix("#") else { return Line(text: line, name: nil, value: nil) }
            let nameEnd = trimmed.firstIndex { $0 == "=" || $0 == " " || $0 == "\t" } ?? trimmed.endIndex
            let name = String(trimmed[..<nameEnd])
            // coturn strips leading spaces, tabs and "=" from the value, then surrounding double quotes.
            var value = Substring(trimmed[nameEnd...]).drop { $0 == " " || $0 == "\t" || $0 == "=" }
            while value.last == " " || value.last == "\t" || value.last == "\r" { value = value.dropLast() }
            if value.count >= 2, value.first == "\"", value.last == "\"" { value = value.dropFirst().dropLast() }
            return Line(text: line, name: name, value: value.isEmpty ? nil : String(value))
        }
    }

    private func load() throws(TurnkeeperError) -> (FileContents, [Line]) {
        let file = try FileContents.read(path, limit: 1 << 20)
        return (file, Self.parse(String(decoding: file.bytes, as: UTF8.self)))
    }

    /// The secrets coturn will accept after its next start.
    public func secrets() throws(TurnkeeperError) -> [TurnSecret] {
        let (_, lines) = try load()
        var secrets: [TurnSecret] = []
        for (index, line) in lines.enumerated() where line.name == "static-auth-secret" {
            guard let value = line.value else {
                throw TurnkeeperError(.unreadableFile, "\(path), line \(index + 1): static-auth-secret has no value.")
            }
            secrets.append(try TurnSecret(adopting: value, source: "\(path), line \(index + 1)"))
        }
        return secrets
    }

    /// Replaces the static-auth-secret lines with `secrets`, where the first one stood (or after
    /// use-auth-secret). Requires use-auth-secret and realm, and refuses lt-cred-mech beside them.
    public func setSecrets(_ secrets: [TurnSecret]) throws(TurnkeeperError) {
        let (_, lines) = try load()
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
        if let index = lines.firstIndex(where: { $0.name == "lt-cred-mech" }) {
            throw TurnkeeperError(
                .unreadableFile,
                "\(path), line \(index + 1): lt-cred-mech is mixed with use-auth-secret, and coturn then rejects "
                    + "Synapse's credentials; nothing was written. Remove the lt-cred-mech line."
            )
        }
        let rendered = secrets.map { secret in
            secret.withExposedBytes { "static-auth-secret=\(String(decoding: $0, as: UTF8.self))" }
        }
        var output: [String] = []
        var placed = false
        for line in lines {
            if line.name == "static-auth-secret" {
                if !placed {
                    output += rendered
                    placed = true
                }
                continue
            }
            output.append(line.text)
            if line.name == "use-auth-secret" && !placed && !lines.contains(where: { $0.name == "static-auth-secret" })
            {
                output += rendered
                placed = true
            }
        }
        // It now holds secrets: a world-readable turnserver.conf is narrowed to 0640, as a secret file is.
        try AtomicFile.write(
            Array(output.joined(separator: "\n").utf8), to: path, permissions: 0o640, maximumPermissions: 0o640,
            existing: .replace)
    }
}
