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
                escaped +=
                    "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count)
                    + String(scalar.value, radix: 16)
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        return "{\"homeserver\": \"\(escaped)\"}\n"
    }

    /// The file for a request path under /calltest/, or nil.
    public static func file(at path: String, homeserver: String) -> File? {
        let name = path == "/calltest/" ? "index.html" : String(path.dropFirst("/calltest/".count))
        guard path.hasPrefix("/calltest/") else { return nil }
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
        if mkdir(directory, 0o755) != 0 && errno != EEXIST {
            throw TurnkeeperError(
                .unwritableFile,
                "cannot create \(directory): \(errnoDescription(errno)); nothing was written. Create its parent "
                    + "directory first.")
        }
        let target = try TrustedDirectory(directory)
        var output = files.map { ($0.name, $0.bytes) }
        if let homeserver { output.append(("config.json", Array(configJSON(homeserver: homeserver).utf8))) }
        let ours = Set(files.map(\.name) + ["config.json"])
        for entry in try entries(of: directory) where !ours.contains(entry) {
            throw TurnkeeperError(
                .invalidArgument,
                "\(directory) holds \(entry), which is not part of the call test page; nothing was written. Give "
                    + "--out an empty or new directory, such as /var/www/turnkeeper-calltest.")
        }
        if let index = try target.read("index.html", limit: 1 << 20),
            !index.bytes.withUnsafeBufferPointer({ contains($0, generatorMark) })
        {
            throw TurnkeeperError(
                .invalidArgument,
                "\(target.describe("index.html")) is not the call test page's; nothing was written. Give --out an "
                    + "empty or new directory.")
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

    private static func entries(of directory: String) throws(TurnkeeperError) -> [String] {
        guard let handle = opendir(directory) else {
            throw TurnkeeperError(
                .unreadableFile, "cannot list \(directory): \(errnoDescription(errno)); nothing was written.")
        }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." && !name.hasPrefix(".") { names.append(name) }
        }
        return names
    }

    private static func contains(_ haystack: UnsafeBufferPointer<UInt8>, _ needle: [UInt8]) -> Bool {
        guard haystack.count >= needle.count else { return false }
        for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
            if haystack[start..<start + needle.count].elementsEqual(needle) { return true }
        }
        return false
    }
}
