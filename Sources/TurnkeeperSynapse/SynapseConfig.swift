import Glibc
public import TurnkeeperCore
public import TurnkeeperCredentials
import TurnkeeperCrypto
import TurnkeeperYAML

/// Synapse's TURN settings, read from its config files with Synapse's own rules.
///
/// Synapse is started with `-c homeserver.yaml -c conf.d/`. A directory contributes its regular files
/// ending in `.yaml` (not `.yml`), hidden ones included, in sorted full-path order. The merge is
/// shallow: a later file replaces a whole top-level key. Empty and non-mapping files are skipped with
/// a warning, as Synapse skips them.
public struct SynapseConfig: Sendable {
    /// The files read, in order.
    public let files: [String]
    /// Things worth telling the admin that did not stop the read.
    public let warnings: [String]
    /// The file that last set each top-level key.
    public let origins: [String: String]
    /// A digest of every file read, names and bytes: tells whether Synapse's configuration changed since.
    public let digest: String
    /// The line of each top-level key's value in the file that set it last.
    let lines: [String: Int]

    public let turnURIs: [String]
    /// The effective secret: `turn_shared_secret`, or the whitespace-stripped contents of
    /// `turn_shared_secret_path`; nil when neither is set.
    public let turnSecret: TurnSecret?
    public let turnSecretPath: String?
    public let turnUserLifetime: SynapseDuration
    public let turnAllowGuests: Bool

    /// Reads `paths` (files or directories) in the order Synapse would be given them.
    ///
    /// With `replacing`, those files are read as if they held those bytes (and as if they existed): what
    /// Synapse would see after turnkeeper writes them, known before anything is written.
    public static func load(_ paths: [String], replacing: [String: [UInt8]] = [:]) throws(TurnkeeperError)
        -> SynapseConfig
    {
        var files: [String] = []
        for path in paths {
            var info = stat()
            guard stat(path, &info) == 0 else {
                throw TurnkeeperError(
                    .unreadableFile, "cannot read \(path): \(errnoDescription(errno)). Check the path.")
            }
            if info.st_mode & S_IFMT == S_IFDIR {
                var found = try yamlFiles(in: path)
                for added in replacing.keys where isEntry(added, of: path) && !found.contains(added) {
                    found = (found + [added]).sorted(by: pathOrder)
                }
                files += found
            } else {
                files.append(path)
            }
        }
        var merged: [String: YAMLNode] = [:]
        var origins: [String: String] = [:]
        var warnings: [String] = []
        var digested: [UInt8] = []
        // Bounds on what a config directory can make root read: Synapse's own files are a few, and small.
        guard files.count <= 512 else {
            throw TurnkeeperError(
                .invalidConfiguration,
                "Synapse's configuration lists \(files.count) files, more than the 512 turnkeeper reads. Check "
                    + "synapse.config.")
        }
        var total = 0
        for file in files {
            let bytes: [UInt8]
            if let replaced = replacing[file] {
                bytes = replaced
            } else {
                bytes = try FileContents.read(file, limit: 4 * 1024 * 1024).bytes
            }
            total += bytes.count
            guard total <= 16 << 20 else {
                throw TurnkeeperError(
                    .invalidConfiguration,
                    "Synapse's configuration files hold more than 16 MiB together, more than turnkeeper reads. Check "
                        + "synapse.config.")
            }
            digested += Array(file.utf8) + [0] + Digest.sha256(bytes)
            let node: YAMLNode?
            do {
                node = try YAMLReader.parse(bytes)
            } catch {
                // Only the position and libyaml's fixed wording: the file holds secrets.
                throw TurnkeeperError(
                    .invalidConfiguration,
                    "\(file), \(error.located). Synapse would not start either; fix the YAML there.")
            }
            guard let node, let mapping = node.mapping else {
                warnings.append(
                    "\(file) is empty or not a mapping of options; Synapse skips it, and so does turnkeeper.")
                continue
            }
            // In file order, so a key repeated in one file ends with its last value, as in PyYAML.
            for (key, value) in mapping {
                guard let name = key.scalar?.text else { continue }
                merged[name] = value
                origins[name] = file
            }
        }
        return try SynapseConfig(
            files: files, warnings: warnings, origins: origins, merged: merged, replacing: replacing,
            digest: Hex.encode(Digest.sha256(digested)))
    }

    private init(
        files: [String], warnings: [String], origins: [String: String], merged: [String: YAMLNode],
        replacing: [String: [UInt8]], digest: String
    ) throws(TurnkeeperError) {
        self.files = files
        self.digest = digest
        self.lines = merged.mapValues(\.line)
        self.origins = origins
        var warnings = warnings
        func location(_ key: String) -> String {
            let line = merged[key].map { ", line \($0.line)" } ?? ""
            return "\(origins[key] ?? "the config")\(line)"
        }
        func text(_ key: String) throws(TurnkeeperError) -> String? {
            guard let node = merged[key], !node.isNull else { return nil }
            guard let scalar = node.scalar else {
                throw TurnkeeperError(.invalidConfiguration, "\(location(key)): \(key) must be a single value.")
            }
            return scalar.text
        }
        /// Synapse calls `.encode()` on these: YAML must read them as strings, not numbers, booleans or dates.
        func string(_ key: String) throws(TurnkeeperError) -> String? {
            guard let value = try text(key) else { return nil }
            guard merged[key]?.scalar?.isString == true else {
                throw TurnkeeperError(
                    .invalidConfiguration,
                    "\(location(key)): YAML reads \(key) as a number, a boolean or a date, not as text, and Synapse "
                        + "fails on it. Put it in quotes.")
            }
            return value
        }

        if let node = merged["turn_uris"], !node.isNull {
            if let sequence = node.sequence, sequence.allSatisfy({ $0.scalar != nil }) {
                turnURIs = sequence.compactMap(\.string)
            } else if node.scalar != nil {
                // Synapse iterates whatever it is given; a bare string would be read letter by letter.
                throw TurnkeeperError(
                    .invalidConfiguration,
                    "\(location("turn_uris")): turn_uris is a single string; make it a list, such as "
                        + "[\"turn:turn.example.org?transport=udp\"]."
                )
            } else {
                throw TurnkeeperError(
                    .invalidConfiguration, "\(location("turn_uris")): turn_uris must be a list of URIs.")
            }
        } else {
            turnURIs = []
        }

        let inline = try string("turn_shared_secret")
        let path = try string("turn_shared_secret_path")
        if let inline, !inline.isEmpty, let path, !path.isEmpty {
            throw TurnkeeperError(
                .invalidConfiguration,
                "both turn_shared_secret (\(location("turn_shared_secret"))) and turn_shared_secret_path "
                    + "(\(location("turn_shared_secret_path"))) are set, and Synapse refuses to start. Remove one of "
                    + "the two lines; if one of them is in turnkeeper's own file, remove the other (or change "
                    + "synapse.mode in turnkeeper.yaml to the form you want)."
            )
        }
        turnSecretPath = path.flatMap { $0.isEmpty ? nil : $0 }
        if let turnSecretPath {
            // Synapse reads the file once at startup and strips surrounding whitespace.
            let bytes: [UInt8]
            if let replaced = replacing[turnSecretPath] {
                bytes = replaced
            } else {
                let file = try FileContents.read(turnSecretPath, limit: 4096)
                // Read as root for Synapse, which is not root: a file only root may read is not one Synapse reads,
                // and is not ours to copy into coturn's store.
                guard file.ownerID != 0 || file.permissions & 0o044 != 0 else {
                    throw TurnkeeperError(
                        .invalidConfiguration,
                        "\(turnSecretPath) (turn_shared_secret_path, \(location("turn_shared_secret_path"))) may be read "
                            + "by root alone, so Synapse cannot read it either. Run `chgrp matrix-synapse \(turnSecretPath) "
                            + "&& chmod 640 \(turnSecretPath)` (with the group Synapse runs as).")
                }
                bytes = file.bytes
            }
            guard let decoded = String(validating: bytes, as: UTF8.self) else {
                throw TurnkeeperError(
                    .invalidConfiguration,
                    "\(turnSecretPath) (turn_shared_secret_path) is not valid UTF-8, and Synapse refuses to read it.")
            }
            let stripped = decoded.trimmingWhitespace()
            turnSecret = try TurnSecret(adopting: stripped, source: "\(turnSecretPath) (turn_shared_secret_path)")
        } else if let inline {
            turnSecret = try TurnSecret(
                adopting: inline, source: "turn_shared_secret in \(location("turn_shared_secret"))")
        } else {
            turnSecret = nil
        }
        if let secret = turnSecret, !secret.isInAlphabet {
            warnings.append(
                "Synapse's TURN secret holds characters outside A-Z, a-z, 0-9; they may need quoting in coturn's "
                    + "config. `turnkeeper secret generate` makes one that does not."
            )
        }

        if let lifetime = try text("turn_user_lifetime") {
            turnUserLifetime = try SynapseDuration(
                parsing: lifetime, source: "turn_user_lifetime (\(location("turn_user_lifetime")))")
        } else {
            turnUserLifetime = SynapseDuration(milliseconds: 3_600_000)
        }
        // Synapse takes the value's truth: YAML's booleans, and any other non-empty value is true.
        if let node = merged["turn_allow_guests"], let scalar = node.scalar {
            turnAllowGuests = scalar.isNull ? false : (scalar.bool ?? !scalar.text.isEmpty)
        } else {
            turnAllowGuests = true
        }
        self.warnings = warnings
    }

    /// "FILE, line N" of the file that set `key` last, or nil when no file sets it.
    public func location(of key: String) -> String? {
        guard let origin = origins[key] else { return nil }
        return lines[key].map { "\(origin), line \($0)" } ?? origin
    }

    /// Synapse's config-directory rule: regular `*.yaml` files, hidden ones too, sorted by full path.
    static func yamlFiles(in directory: String) throws(TurnkeeperError) -> [String] {
        guard let handle = opendir(directory) else {
            throw TurnkeeperError(
                .unreadableFile, "cannot read the directory \(directory): \(errnoDescription(errno)).")
        }
        defer { closedir(handle) }
        var files: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            guard name.hasSuffix(".yaml") else { continue }
            // Names are printed in messages: one that could rewrite a terminal is refused, not shown.
            if name.unicodeScalars.contains(where: {
                $0.value < 0x20 || (0x7F...0x9F).contains($0.value) || (0x202A...0x202E).contains($0.value)
                    || (0x2066...0x2069).contains($0.value) || $0.value == 0x2028 || $0.value == 0x2029
            }) {
                throw TurnkeeperError(
                    .invalidConfiguration,
                    "a *.yaml file in \(directory) has a control character in its name; rename it (`ls -b` shows it).")
            }
            let full = directory.hasSuffix("/") ? directory + name : directory + "/" + name
            var info = stat()
            if stat(full, &info) == 0, info.st_mode & S_IFMT == S_IFREG { files.append(full) }
        }
        return files.sorted(by: pathOrder)
    }

    /// Python sorts str by code point; UTF-8 byte order is the same order.
    public static func pathOrder(_ a: String, _ b: String) -> Bool {
        Array(a.utf8).lexicographicallyPrecedes(Array(b.utf8))
    }

    /// True when `file` is a `*.yaml` entry of `directory`, as Synapse would list it.
    static func isEntry(_ file: String, of directory: String) -> Bool {
        guard file.hasSuffix(".yaml"), let slash = file.lastIndex(of: "/") else { return false }
        var parent = String(file[..<slash])
        var dir = directory
        while dir.count > 1 && dir.hasSuffix("/") { dir.removeLast() }
        if parent.isEmpty { parent = "/" }
        return parent == dir
    }
}

extension String {
    /// Python's `str.strip()`: Unicode white space, and the separators U+001C to U+001F.
    func trimmingWhitespace() -> String {
        let isSpace: (Character) -> Bool = {
            $0.isWhitespace || $0.unicodeScalars.allSatisfy { (0x1C...0x1F).contains($0.value) }
        }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else {
            return ""
        }
        return String(self[first...last])
    }
}
