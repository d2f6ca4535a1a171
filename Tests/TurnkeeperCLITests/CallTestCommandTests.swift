import Foundation
import TestSupport
import Testing

@Suite("turnkeeper calltest")
struct CallTestCommandTests {
    @Test("--out writes the page; a directory holding anything else is refused with exit 2; a bad URL is usage")
    func out() throws {
        let directory = try TemporaryDirectory("turnkeeper-calltest-cli")
        defer { directory.remove() }
        let out = directory.file("page")
        let written = try TurnkeeperBinary.run(
            ["calltest", "--out", out, "--homeserver", "https://matrix.example.org"])
        #expect(written.status == 0 && written.stdout.contains("wrote index.html"), "\(written)")
        #expect(try directory.read("page/config.json").contains("https://matrix.example.org"))

        let site = directory.file("site")
        try FileManager.default.createDirectory(atPath: site, withIntermediateDirectories: false)
        _ = try directory.write("site/index.html", "<h1>site</h1>", mode: 0o644)
        let refused = try TurnkeeperBinary.run(["calltest", "--out", site])
        #expect(refused.status == 2 && refused.stderr.contains("no index.html of the page"), "\(refused)")
        #expect(try directory.read("site/index.html") == "<h1>site</h1>")

        let usage = try TurnkeeperBinary.run(["calltest", "--out", out, "--homeserver", "https://a.example;x"])
        #expect(usage.status == 2 && !FileManager.default.fileExists(atPath: out + "/x"), "\(usage)")
    }
}
