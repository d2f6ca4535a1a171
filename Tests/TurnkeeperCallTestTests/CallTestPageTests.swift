import Foundation
import TestSupport
import Testing
import TurnkeeperCallTest
import TurnkeeperCore

@Suite("The call test page")
struct CallTestPageTests {
    static func text(_ name: String) throws -> String {
        let file = try #require(CallTestPage.files.first { $0.name == name })
        return String(decoding: file.bytes, as: UTF8.self)
    }

    @Test("Self-contained: no inline script or style, no handlers in markup, no storage, no eval, no other site")
    func selfContained() throws {
        let html = try Self.text("index.html")
        let script = try Self.text("calltest.js")
        let css = try Self.text("calltest.css")
        #expect(html.contains(#"<script src="calltest.js" defer></script>"#))
        #expect(html.components(separatedBy: "<script").count == 2, "one script, loaded from its own file")
        for banned in ["<style", " style=", " onclick=", " onload=", " onsubmit=", "javascript:", "//cdn", "@import"] {
            #expect(!html.contains(banned), "\(banned)")
            #expect(!css.contains(banned), "\(banned)")
        }
        for banned in [
            "innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "localStorage",
            "sessionStorage", "document.cookie", "indexedDB",
        ] {
            #expect(!script.contains(banned), "\(banned)")
        }
        // Every URL the page names is an example or the Matrix API on the homeserver the user gives.
        for line in (html + script + css).split(separator: "\n") where line.contains("https://") {
            #expect(line.contains("https://matrix.example.org") || line.contains("\"https://\""), "\(line)")
        }
    }

    @Test("The page uses the Matrix client API as a client does, and logs out only a session it created")
    func matrixCalls() throws {
        let script = try Self.text("calltest.js")
        for path in ["/_matrix/client/v3/login", "/_matrix/client/v3/voip/turnServer", "/_matrix/client/v3/logout"] {
            #expect(script.contains(path), "\(path)")
        }
        #expect(script.contains(#"iceTransportPolicy: "relay""#))
        #expect(script.contains("ownSession = { homeserver, token }"), "only a session it created is logged out")
    }

    @Test("The Content-Security-Policy names the homeserver's origin and allows nothing inline")
    func contentSecurityPolicy() {
        let policy = CallTestPage.contentSecurityPolicy(homeserverOrigin: "https://matrix.example.org")
        #expect(
            policy
                == "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self' "
                + "https://matrix.example.org; img-src 'none'; base-uri 'none'; form-action 'none'; "
                + "frame-ancestors 'none'")
        #expect(!policy.contains("unsafe"))
        let headers = Dictionary(uniqueKeysWithValues: CallTestPage.headers(homeserverOrigin: nil))
        #expect(headers["Content-Security-Policy"]?.contains("connect-src 'self' https:;") == true)
        #expect(headers["X-Content-Type-Options"] == "nosniff" && headers["Referrer-Policy"] == "no-referrer")
    }

    @Test("config.json is JSON with the homeserver, escaped")
    func configJSON() throws {
        let text = CallTestPage.configJSON(homeserver: "https://matrix.example.org")
        let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: String]
        #expect(object == ["homeserver": "https://matrix.example.org"])
        let hostile = CallTestPage.configJSON(homeserver: "a\"b\\c</script>\u{1}é")
        let decoded = try JSONSerialization.jsonObject(with: Data(hostile.utf8)) as? [String: String]
        #expect(decoded == ["homeserver": "a\"b\\c</script>\u{1}é"])
        #expect(!hostile.contains("</"))
        let astral = CallTestPage.configJSON(homeserver: "a😀")
        #expect(astral.contains("\\ud83d\\ude00"))
        #expect(try JSONSerialization.jsonObject(with: Data(astral.utf8)) as? [String: String] == ["homeserver": "a😀"])
    }

    @Test("Paths under /calltest/ map to the page's files; nothing else does")
    func paths() {
        #expect(CallTestPage.file(at: "/calltest/", homeserver: "https://h.example")?.name == "index.html")
        #expect(CallTestPage.file(at: "/calltest/calltest.js", homeserver: "https://h.example")?.name == "calltest.js")
        #expect(
            CallTestPage.file(at: "/calltest/config.json", homeserver: "https://h.example")?.contentType
                == "application/json")
        for path in ["/calltest", "/calltest/../metrics", "/calltest/index.htm", "/metrics", "/calltest//index.html"] {
            #expect(CallTestPage.file(at: path, homeserver: "https://h.example") == nil, "\(path)")
        }
    }

    @Test("--out writes the page 0644 into a new 0755 directory, rewrites its own, and refuses anyone else's")
    func writeOut() throws {
        let directory = try TemporaryDirectory("turnkeeper-calltest")
        defer { directory.remove() }
        let out = directory.file("calltest")
        let written = try CallTestPage.write(to: out, homeserver: "https://matrix.example.org")
        #expect(Set(written) == ["index.html", "calltest.js", "calltest.css", "config.json"])
        #expect(permissions(of: out) == 0o755)
        for name in written { #expect(permissions(of: out + "/" + name) == 0o644, "\(name)") }
        #expect(try directory.read("calltest/config.json").contains("https://matrix.example.org"))
        // Again, without a homeserver: its own files replaced, the old config.json gone.
        #expect(Set(try CallTestPage.write(to: out, homeserver: nil)) == ["index.html", "calltest.js", "calltest.css"])
        #expect(!FileManager.default.fileExists(atPath: out + "/config.json"))

        // A web root: its index.html is not ours, and another file is there. Nothing is written.
        let site = directory.file("site")
        try FileManager.default.createDirectory(atPath: site, withIntermediateDirectories: false)
        _ = try directory.write("site/index.html", "<h1>my site</h1>", mode: 0o644)
        #expect(throws: TurnkeeperError.self) { try CallTestPage.write(to: site, homeserver: nil) }
        #expect(try directory.read("site/index.html") == "<h1>my site</h1>")
        #expect(!FileManager.default.fileExists(atPath: site + "/calltest.js"))
        // Files named as the page's without its index.html: another program's config.json is not ours to replace.
        let other = directory.file("other")
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: false)
        _ = try directory.write("other/config.json", "{\"theirs\": true}\n", mode: 0o644)
        #expect(throws: TurnkeeperError.self) { try CallTestPage.write(to: other, homeserver: nil) }
        #expect(try directory.read("other/config.json") == "{\"theirs\": true}\n")
        // A web root holding only hidden entries (.well-known) is still someone's.
        let root = directory.file("root")
        try FileManager.default.createDirectory(atPath: root + "/.well-known", withIntermediateDirectories: true)
        #expect(throws: TurnkeeperError.self) { try CallTestPage.write(to: root, homeserver: nil) }
        #expect(!FileManager.default.fileExists(atPath: root + "/index.html"))
        // A trailing slash names the same directory.
        #expect(try CallTestPage.write(to: out + "/", homeserver: nil).count == 3)
        _ = try directory.write("calltest/other.txt", "x", mode: 0o644)
        do {
            try CallTestPage.write(to: out, homeserver: nil)
            Issue.record("a directory with a foreign file was written to")
        } catch {
            #expect(error.reason.contains("other.txt") && error.reason.contains("nothing was written"), "\(error)")
        }
    }
}
