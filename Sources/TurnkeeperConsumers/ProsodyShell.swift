/// What turnkeeper says to a running Prosody through `prosodyctl shell` (its admin socket), and how it reads
/// the answers. The shell exits 0 even when a command did nothing, so every answer is read, not its status.
public enum ProsodyShell {
    /// Makes Prosody read its config files again. Alone it changes no credential: mod_turn_external reads
    /// its options once, when it loads.
    public static let reloadConfig = ["config", "reload"]
    /// Reloads mod_turn_external on every host that has it, so it reads the options just loaded.
    public static let reloadModule = ["module", "reload", "turn_external"]

    /// Did `config reload` succeed? Prosody answers "OK: Config reloaded …" or the parser's error.
    public static func configReloaded(_ output: String) -> Bool { output.contains("Config reloaded") }

    /// How many hosts `module reload` reached ("Module reloaded on N hosts"), or nil without that answer.
    public static func reloadedHosts(_ output: String) -> Int? {
        guard let range = output.firstRange(of: "Module reloaded on ") else { return nil }
        let digits = output[range.upperBound...].prefix { $0.isASCII && $0.isNumber }
        return Int(digits)
    }

    /// Lua for the admin shell that prints, for each of `hosts`, one line per TURN service the host hands out
    /// now: `tk-turn HOST USERNAME PASSWORD`, or `tk-none HOST` when mod_external_services is not loaded there.
    /// The hosts are written as Lua strings nothing can end; the answer holds credentials, never the secret.
    public static func credentialsQuery(hosts: [String]) -> String {
        let list = hosts.map { ProsodyConfigFile.luaString(Array($0.utf8)) }.joined(separator: ",")
        return ">local out = {}; for _, h in ipairs({\(list)}) do "
            + "local host = prosody.hosts[h]; local mod = host and host.modules.external_services; "
            + "if not mod then out[#out+1] = \"tk-none \" .. h else "
            + "for _, s in ipairs(mod.get_services()) do if s.type == \"turn\" or s.type == \"turns\" then "
            + "out[#out+1] = \"tk-turn \" .. h .. \" \" .. tostring(s.username) .. \" \" .. tostring(s.password) "
            + "end end end end; return table.concat(out, \"\\n\")"
    }

    /// A TURN credential a host hands out.
    public struct HandedOut: Sendable, Equatable {
        public var host: String
        public var username: String
        public var password: String
    }

    /// The answer to ``credentialsQuery(hosts:)``: what each of `hosts` hands out (hosts without TURN are
    /// missing), and those of `hosts` where mod_external_services is not loaded. Only the hosts asked about
    /// are taken from the answer, so no other text of it can reach a message.
    public static func parseCredentials(_ output: String, hosts: [String]) -> (
        credentials: [HandedOut], missing: [String]
    ) {
        var credentials: [HandedOut] = []
        var missing: [String] = []
        for line in output.split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            // The shell prefixes its result ("Result: "); only the words after the marker count.
            if let range = line.firstRange(of: "tk-turn ") {
                let words = line[range.upperBound...].split(separator: " ", omittingEmptySubsequences: true)
                guard words.count == 3, hosts.contains(String(words[0])) else { continue }
                credentials.append(
                    .init(host: String(words[0]), username: String(words[1]), password: String(words[2])))
            } else if let range = line.firstRange(of: "tk-none ") {
                let host = String(line[range.upperBound...])
                if hosts.contains(host) && !missing.contains(host) { missing.append(host) }
            }
        }
        return (credentials, missing)
    }
}
