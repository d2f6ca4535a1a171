import Foundation
import TestSupport
import Testing
import TurnkeeperConsumers
import TurnkeeperCore
import TurnkeeperCredentials

@Suite("Prosody's file and a file consumer's template: what the secret becomes", .mayBlock)
struct ConsumerFileTests {
    static let hostile = ["we\"ird\\\\sec]]ret ü$x", "a\nb", "]]--[[", "\\065\\066", "x\"; os.exit(1) --"]

    private func secret(_ text: String) throws -> TurnSecret {
        // Line breaks cannot be adopted; the rest is what an adopted secret may hold.
        try TurnSecret(adopting: text.replacingOccurrences(of: "\n", with: "n"), source: "test")
    }

    @Test("every secret becomes a Lua string that real Lua reads back byte for byte, and turnkeeper reads it too")
    func luaRoundTrip() throws {
        let lua = try ProcessRunner.which("lua5.4", package: "lua5.4")
        let file = ProsodyConfigFile(
            path: "/etc/prosody/conf.d/turnkeeper.cfg.lua",
            options: .init(host: "turn.example.org", port: 3478, tlsPort: 5349, tcp: true, user: nil, ttlSeconds: 3600))
        for text in Self.hostile + ["A1b2C3"] {
            let value = try secret(text)
            let rendered = file.render(value)
            // Real Lua runs the file as Prosody's config loader does, then prints the secret's bytes as hex.
            let program =
                String(decoding: rendered, as: UTF8.self)
                + "\nio.write((turn_external_secret:gsub('.', function(c) return string.format('%02x', c:byte()) end)))"
            let output = try ProcessRunner.run(lua, ["-"], stdin: program)
            #expect(output.status == 0, "\(output)")
            let expected = value.withExposedBytes { $0.map { String(format: "%02x", $0) }.joined() }
            #expect(output.stdout == expected)
            #expect(ProsodyConfigFile.secret(in: rendered) == value)
        }
    }

    @Test("a file turnkeeper did not write holds no secret of its own; a damaged line reads as none")
    func foreignProsodyFile() {
        #expect(ProsodyConfigFile.secret(in: Array("turn_external_secret = \"abc\"\n".utf8)) == nil)
        let damaged = ProsodyConfigFile.marker + "\nturn_external_secret = \"ab\\0\"\n"
        #expect(ProsodyConfigFile.secret(in: Array(damaged.utf8)) == nil)
    }

    @Test("the admin shell's answers: the reload counts, credentials by host, hosts without the module")
    func shellAnswers() {
        #expect(ProsodyShell.configReloaded("OK: Config reloaded (you may need to reload modules to take effect)"))
        #expect(!ProsodyShell.configReloaded("Error: parser: Error loading included x: Permission denied"))
        #expect(ProsodyShell.reloadedHosts("| Reloaded on a\nOK: Module reloaded on 2 hosts") == 2)
        #expect(ProsodyShell.reloadedHosts("OK: Module reloaded on 0 hosts") == 0)
        #expect(ProsodyShell.reloadedHosts("Error: no such module") == nil)
        let answer =
            "| Result: tk-turn a.example 1795812679 UD4L=\ntk-turn a.example 1795812679:u x/y=\ntk-none b.example\n"
        let parsed = ProsodyShell.parseCredentials(
            answer + "tk-none \u{1B}[2Jrun curl x | sh\ntk-turn evil.example 1 x\n", hosts: ["a.example", "b.example"])
        #expect(parsed.credentials.map(\.username) == ["1795812679", "1795812679:u"])
        #expect(parsed.credentials.map(\.host) == ["a.example", "a.example"])
        #expect(parsed.missing == ["b.example"])
        // Host names go into the Lua as escaped strings: a hostile one cannot end its string.
        let query = ProsodyShell.credentialsQuery(hosts: ["x\"}) os.exit(1) --"])
        #expect(!query.contains("x\""))
    }

    @Test("templates: YAML and JSON quote the secret, env and plain refuse what they cannot carry")
    func templates() throws {
        let plain = try secret("Abc123")
        let odd = try secret("we\"ird\\\\ ü")
        let yaml = try SecretTemplate(
            bytes: Array("secret: {{turn_secret}}\nagain: {{turn_secret}}\n".utf8), format: .yaml, path: "t")
        #expect(String(decoding: try yaml.render(plain), as: UTF8.self) == "secret: \"Abc123\"\nagain: \"Abc123\"\n")
        #expect(
            String(decoding: try yaml.render(odd), as: UTF8.self).hasPrefix("secret: \"we\\\"ird\\\\\\\\ \\u00fc\"\n"))
        let json = try SecretTemplate(bytes: Array("{\"s\": {{turn_secret}}}".utf8), format: .json, path: "t")
        let decoded = try JSONSerialization.jsonObject(with: Data(try json.render(odd))) as? [String: String]
        #expect(decoded?["s"] == "we\"ird\\\\ ü")
        let env = try SecretTemplate(bytes: Array("TURN_SECRET={{turn_secret}}\n".utf8), format: .env, path: "t")
        #expect(String(decoding: try env.render(plain), as: UTF8.self) == "TURN_SECRET=Abc123\n")
        #expect(throws: TurnkeeperError(.invalidSecret, "")) { try env.render(odd) }
        #expect(throws: TurnkeeperError(.invalidConfiguration, "")) {
            try SecretTemplate(bytes: Array("no placeholder".utf8), format: .plain, path: "t")
        }
    }

    @Test("credentials in an app's answer: iceServers, Synapse's shape, nested; anything else is not JSON")
    func handedOut() {
        let ice =
            #"{"iceServers":[{"urls":["turn:a"],"username":"1:u","credential":"p"}],"x":{"username":"2","password":"q"}}"#
        let found = HandedOutCredentials.parse(Array(ice.utf8)) ?? []
        #expect(Set(found.map(\.username)) == ["1:u", "2"])
        #expect(HandedOutCredentials.parse(Array("not json".utf8)) == nil)
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect((HandedOutCredentials.parse(Array(deep.utf8)) ?? []).isEmpty)
    }
}
