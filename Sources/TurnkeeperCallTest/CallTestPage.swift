import Glibc
public import TurnkeeperCore

/// The call test page (Page/: HTML, CSS and JS, no third-party code), as `turnkeeper run` serves it at
/// /calltest/ and as `turnkeeper calltest --out` writes it for the homeserver's own web server.
public enum CallTestPage {
    public struct File: Sendable {
        public let name: String
        public let contentType: String
        public let bytes: [UInt8]
    }

    public static let files: [File] = [
        File(name: "index.html", contentType: "text/html; charset=utf-8", bytes: PackageResources.index_html),
        File(name: "calltest.js", contentType: "text/javascript; charset=utf-8", bytes: PackageResources.calltest_js),
        File(name: "calltest.css", contentType: "text/css; charset=utf-8", bytes: PackageResources.calltest_css),
    ]

    /// What says a directory's index.html is this page, so that `--out` replaces only its own files.
    static let generatorMark = Array(#"<meta name="generator" content="turnkeeper calltest">"#.utf8)

    /// The page may load only itself and talk only to `origin` (the homeserver; any https: one when nil,
    /// as the user then types it). Nothing inline, no frames, no forms sent anywhere.
    public static func contentSecurityPolicy(homeserverOrigin origin: String?) -> String {
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self' \(origin ?? "https:"); "
            + "img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    }

    /// Headers for every file of the page.
    public static func headers(homeserverOrigin origin: String?) -> [(String, String)] {
        [
            ("Content-Security-Policy", contentSecurityPolicy(homeserverOrigin: origin)),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
            ("Cross-Origin-Opener-Policy", "same-origin"),
            ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
        ]
    }

    /// `config.json`, which pre-fills the homeserver field. The URL was checked (``HomeserverURL``), so it
    /// holds no character JSON would need escaped; escaping anyway costs nothing.
    public static func configJSON(homeserver: String) -> String {
        var escaped = ""
        for scalar in homeserver.unicodeScalars {
            switch scalar {
            case "\"": escaped += "\\\""
            case "\\": escaped += "\\\\"
            case "<": escaped += "\\u003c"
            case _ where scalar.value < 0x20 || scalar.value > 0x7E:
                // As UTF-16 units: a scalar above U+FFFF becomes its surrogate pair.
                for unit in String(scalar).utf16 {
                    let hex = String(unit, radix: 16)
                    escaped += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                }
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        return "{\"homeserver\": \"\(escaped)\"}\n"
    }

    /// A config.json this page's writer made: nothing else in the directory may be replaced or removed.
    static func isOurConfig(_ bytes: [UInt8]) -> Bool {
        let text = String(decoding: bytes, as: UTF8.self)
        return bytes.count <= 1024 && text.hasPrefix("{\"homeserver\": \"") && text.hasSuffix("\"}\n")
            && text.filter { $0 == "\n" }.count == 1
    }

    /// The file for a request path under /calltest/, or nil.
    public static func file(at path: String, homeserver: String) -> File? {
        guard path.hasPrefix("/calltest/") else { return nil }
        let name = path == "/calltest/" ? "index.html" : String(path.dropFirst("/calltest/".count))
        if name == "config.json" {
            return File(
                name: name, contentType: "application/json", bytes: Array(configJSON(homeserver: homeserver).utf8))
        }
        return files.first { $0.name == name }
    }

    /// Writes the page into `directory` (created 0755 if missing; its parent must exist), each file 0644 and
    /// replaced atomically. A directory holding anything but this page's own files is refused before anything
    /// is written: `--out /var/www/html` must not overwrite a site's index.html.
    /// - Returns: the names written.
    @discardableResult
    public static func write(to directory: String, homeserver: String?) throws(TurnkeeperError) -> [String] {
        var path = directory
        while path.count > 1 && path.hasSuffix("/") { path.removeLast() }
        let (parentPath, name) = TrustedDirectory.split(path)
        guard !name.isEmpty, name != ".", name != ".." else {
            throw TurnkeeperError(
                .invalidArgument, "--out must name a directory, such as /var/www/turnkeeper-calltest.")
        }
        // Created through its parent's descriptor, once the parent is one only root may change; 0755 whatever
        // the umask, so that the web server can read it.
        let parent = try TrustedDirectory(parentPath, for: path)
        if mkdirat(parent.fd, name, 0o755) == 0 {
            let created = openat(parent.fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            defer { if created >= 0 { close(created) } }
            guard created >= 0, fchmod(created, 0o755) == 0 else {
                throw TurnkeeperError(
                    .unwritableFile,
                    "cannot set the mode of \(path): \(errnoDescription(errno)); nothing was written.")
            }
        } else if errno != EEXIST {
            throw TurnkeeperError(
                .unwritableFile,
                "cannot create \(path): \(errnoDescription(errno)); nothing was written. Create its parent "
                    + "directory first.")
        }
        let target = try TrustedDirectory(path)
        var output = files.map { ($0.name, $0.bytes) }
        if let homeserver { output.append(("config.json", Array(configJSON(homeserver: homeserver).utf8))) }
        let ours = Set(files.map(\.name) + ["config.json"])
        let present = try entries(of: target)
        for entry in present where !ours.contains(entry) && !isTemporary(entry, of: ours) {
            throw TurnkeeperError(
                .invalidArgument,
                "\(path) holds \(ServerText.escaped(entry, limit: 200)), which is not part of the call test page; "
                    + "nothing was written. Give --out an empty or new directory, such as "
                    + "/var/www/turnkeeper-calltest.")
        }
        // Any of the page's names present means the page must be there, recognised by its index.html.
        if present.contains(where: ours.contains) {
            let index = try target.read("index.html", limit: 1 << 20)
            guard let index, index.bytes.withUnsafeBufferPointer({ contains($0, generatorMark) }) else {
                throw TurnkeeperError(
                    .invalidArgument,
                    "\(path) holds files named as the call test page's, but no index.html of the page; nothing "
                        + "was written. Give --out an empty or new directory.")
            }
            if let config = try target.read("config.json", limit: 4096), !isOurConfig(config.bytes) {
                throw TurnkeeperError(
                    .invalidArgument,
                    "\(target.describe("config.json")) is not one the call test page's writer made; nothing was "
                        + "written. Give --out an empty or new directory.")
            }
        }
        for name in ours { try target.checkReplaceable(name) }
        for (name, bytes) in output {
            try target.write(
                bytes, to: name, permissions: 0o644, maximumPermissions: 0o644, group: nil, existing: .replace,
                enforcingGroup: false)
        }
        // A config.json from an earlier run with --homeserver would pre-fill a homeserver no longer meant.
        if homeserver == nil { try target.remove("config.json") }
        return output.map(\.0)
    }

    /// The directory's entries, hidden ones too, read through its descriptor.
    private static func entries(of directory: borrowing TrustedDirectory) throws(TurnkeeperError) -> [String] {
        let copy = dup(directory.fd)
        guard copy >= 0, let handle = fdopendir(copy) else {
            let code = errno
            if copy >= 0 { close(copy) }
            throw TurnkeeperError(
                .unreadableFile, "cannot list \(directory.path): \(errnoDescription(code)); nothing was written.")
        }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// A temporary file a write of ours left behind (TrustedDirectory names them `.NAME.turnkeeper-…`).
    private static func isTemporary(_ entry: String, of names: Set<String>) -> Bool {
        names.contains { entry.hasPrefix(".\($0).turnkeeper-") }
    }

    private static func contains(_ haystack: UnsafeBufferPointer<UInt8>, _ needle: [UInt8]) -> Bool {
        guard haystack.count >= needle.count else { return false }
        for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
            if haystack[start..<start + needle.count].elementsEqual(needle) { return true }
        }
        return false
    }
}
