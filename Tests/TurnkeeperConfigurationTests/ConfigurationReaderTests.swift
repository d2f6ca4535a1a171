import Foundation
import TestSupport
import Testing
import TurnkeeperCore
import TurnkeeperCredentials

@testable import TurnkeeperConfiguration

/// turnkeeper.yaml read in-process: every malformed file is an error naming the file and the line, with the code
/// the CLI maps to exit status 2. One case per command runs through the binary (TurnkeeperCLITests).
@Suite("turnkeeper.yaml, read and rendered", .mayBlock)
struct ConfigurationReaderTests {
    @Test(
        "Malformed configurations name the file and the line, and say what is wrong",
        arguments: [
            ("synapse: {group: nogroup}\ncoturn: {realm: r}\n", "verify_uri is required"),
            ("synapse: {mode: sideways}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\n", "line 1"),
            ("synapse: {mode: path, group: nogroup}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\n", "secret_file"),
            ("synapse: {group: nogroup}\ncoturn: {realm: r, verify_uri: \"turn:h\", store: config}\n", "config_file"),
            ("synapse: [\ncoturn: {}\n", "line"),
            ("coturn: {realm: r, verify_uri: \"turn:h\"}\n", "synapse: section is missing"),
            (
                "synapse: {group: nogroup}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\nrotation: {interval: soon}\n",
                "line 3"
            ),
            (
                "synapse: {homeserver: \"http://h\", group: nogroup}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\n",
                "access_token_file"
            ),
            (
                "synapse: {turn_user_lifetime: 0, group: nogroup}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\n",
                "turn_user_lifetime"
            ),
            (
                "synapse: {turn_allow_guests: maybe, group: nogroup}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\n",
                "true or false"
            ),
            (
                "synapse: {group: nogroup}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\ndaemon:\n  listen: 9478\n",
                "line 4"
            ),
            (
                "synapse: {group: nogroup}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\ndaemon:\n  listen: \"[::1:9478\"\n",
                "HOST:PORT"
            ),
            (
                "synapse: {group: nogroup}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\ndaemon:\n  probe_interval: 0s\n",
                "under one second"
            ),
            (
                "synapse: {group: nogroup}\ncoturn:\n  realm: !!binary dHVybi5leGFtcGxlLm9yZw==\n  verify_uri: \"turn:h\"\n",
                "YAML tag"
            ),
            (
                "synapse: {group: nogroup}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\ndaemon:\n  probe_uris: turn:x\n",
                "must be a list"
            ),
            (
                "synapse: {group: nogroup}\ncoturn: {realm: r, verify_uri: \"turn:h\", store: postgres, postgres: {tls: false, ca_file: /ca.pem}}\n",
                "ca_file is only read with tls: true"
            ),
            (
                "role: synapse\nsynapse: {group: nogroup}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\nrotation: {root_key_file: /k, keep_previous_epochs: 2}\n",
                "keep_previous_epochs is only read by role turn"
            ),
            (
                "role: turn\ncoturn: {realm: r, verify_uri: \"turn:h\"}\nrotation: {root_key_file: /k, keep_previous_epochs: 0}\n",
                "from 1 to 30"
            ),
            // coturn 4.6.1 cannot reach Redis over TLS, and neither does turnkeeper: refused, not ignored.
            (
                "synapse: {group: nogroup}\ncoturn: {realm: r, verify_uri: \"turn:h\", store: redis, redis: {tls: true}}\n",
                "unknown key \"coturn.redis.tls\""
            ),
            // Typos and values that would silently change behaviour (issue 11, item 6).
            (
                "synapse: {group: nogroup}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\nrotation:\n  state_directroy: /tmp/x\n",
                "line 4: unknown key \"rotation.state_directroy\"; did you mean state_directory?"
            ),
            (
                "synapse: {group: nogroup}\ncoturn: {realm: r, verify_uri: \"turn:h\", stroe: sqlite}\n",
                "did you mean store?"
            ),
            (
                "synapse: {group: nogroup}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\nrotaton: {}\n",
                "did you mean rotation?"
            ),
            ("synapse: {group: nogroup}\ncoturn: {realm: ~, verify_uri: \"turn:h\"}\n", "realm is required"),
            (
                "synapse: {group: nogroup, restart_command: []}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\n",
                "restart_command is empty"
            ),
            (
                "synapse: {group: nogroup, restart_command: ~}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\n",
                "restart_command is null"
            ),
            (
                "synapse: {group: no-such-group-here}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\n",
                "does not exist on this host"
            ),
            ("synapse: {group: nogroup}\ncoturn: {realm: r, verify_uri: \"https://h\"}\n", "must be a TURN URI"),
            ("synapse: {group: nogroup}\ncoturn: {realm: r, verify_uri: \"stun:h\"}\n", "must be a TURN URI"),
            (
                "synapse: {group: nogroup}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\ndaemon: {retry_initial: 1h, retry_max: 1m}\n",
                "retry_max (60 s) is below daemon.retry_initial (3600 s)"
            ),
            (
                "synapse: {group: nogroup}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\ncoturn: {realm: s}\n",
                "line 3: coturn is given twice (first on line 2)"
            ),
            (
                "synapse: {group: nogroup, mode: inline, secret_file: /etc/s}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\n",
                "only read in path mode"
            ),
            (
                "role: turn\ncoturn: {realm: r, verify_uri: \"turn:h\"}\nrotation: {root_key_file: /k, epoch: 20s}\nsynapse: {turn_user_lifetime: 25s}\n",
                "turn_user_lifetime (25 s) is not shorter than rotation.epoch (20 s)"
            ),
            (
                "synapse: {group: nogroup}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\nconsumers: {a: b}\n",
                "must be a list"
            ),
            (
                "synapse: {group: nogroup}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\nconsumers: [{name: synapse, kind: file}]\n",
                "not synapse"
            ),
            (
                "synapse: {group: nogroup}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\nconsumers: [{name: x, kind: ejabberd}]\n",
                "prosody or file"
            ),
            (
                "synapse: {group: nogroup}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\nconsumers: [{name: x, kind: prosody, turn_host: t}]\n",
                "needs hosts"
            ),
            (
                "synapse: {group: nogroup}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\nconsumers: [{name: x, kind: prosody, hosts: [h], turn_host: t, path: /p}]\n",
                "unknown key"
            ),
            (
                "synapse: {group: nogroup}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\nconsumers:\n  - {name: x, kind: file, path: /a, template: /t, format: yaml}\n",
                "needs credential_lifetime"
            ),
            (
                "synapse: {group: nogroup}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\nconsumers:\n  - {name: x, kind: file, path: /a, template: /t, format: yaml, credential_lifetime: 1h, mode: 0644}\n",
                "at most 0640"
            ),
            (
                "synapse: {group: nogroup}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\nconsumers:\n  - {name: x, kind: file, path: /a, template: /t, format: toml, credential_lifetime: 1h}\n",
                "format: yaml, json, env or plain"
            ),
            (
                "synapse: {group: nogroup}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\nconsumers:\n  - {name: x, kind: file, path: /a, template: /t, format: env, credential_lifetime: 1h}\n  - {name: x, kind: file, path: /b, template: /t, format: env, credential_lifetime: 1h}\n",
                "listed twice (first on line 4)"
            ),
            (
                "role: synapse\ncoturn: {realm: r, verify_uri: \"turn:h\"}\nrotation: {root_key_file: /k, epoch: 1h}\nsynapse: {group: nogroup}\nconsumers:\n  - {name: x, kind: file, path: /a, template: /t, format: env, credential_lifetime: 2h}\n",
                "file consumer x: credential_lifetime (7200 s) is not shorter than rotation.epoch"
            ),
        ]
    )
    func malformed(yaml: String, expected: String) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = try directory.write("turnkeeper.yaml", yaml)
        #expect {
            try Configuration.load(path)
        } throws: { error in
            guard let error = error as? TurnkeeperError else { return false }
            return error.code == .invalidConfiguration && error.reason.contains(path)
                && error.reason.contains(expected)
        }
    }

    @Test(
        "daemon.calltest_homeserver: a homeserver's address, and nothing that could break out of a CSP header",
        arguments: [
            ("https://matrix.example.org", "https://matrix.example.org"),
            ("https://Matrix.Example.org:8448/", "https://matrix.example.org:8448"),
            ("http://203.0.113.20:8008", "http://203.0.113.20:8008"),
            ("https://[2001:db8::1]:8448/matrix", "https://[2001:db8::1]:8448"),
        ])
    func calltestHomeserver(text: String, origin: String) throws {
        let url = try #require(HomeserverURL(text))
        #expect(url.origin == origin)
        #expect(!url.text.hasSuffix("/"))
    }

    @Test(
        "daemon.calltest_homeserver refuses what is not just an address",
        arguments: [
            "matrix.example.org", "ftp://matrix.example.org", "https://", "https://a.example; script-src *",
            "https://a.example'", "https://user@a.example", "https://a.example?x=1", "https://a.example#x",
            "https://a.example:99999", "https://a.example:80x", "https://a example", "javascript:alert(1)",
            "https://a.example/../x", "https://[::1", "https://-a.example", "https://a.example\n",
            "https://a.example/p,q", "https://[０]", "https://a.example:８０", "https://ａ.example",
        ])
    func calltestHomeserverRefused(text: String) throws {
        #expect(HomeserverURL(text) == nil)
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let escaped = text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
        let path = try directory.write(
            "turnkeeper.yaml",
            "synapse: {group: nogroup}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\ndaemon:\n"
                + "  calltest_homeserver: \"\(escaped)\"\n")
        #expect {
            try Configuration.load(path)
        } throws: { error in
            // The whole reason is fixed text: the value itself is never echoed.
            (error as? TurnkeeperError)?.reason
                == "\(path), line 4: daemon.calltest_homeserver must be the homeserver's address as users' Matrix "
                + "apps reach it, such as https://matrix.example.org (http or https, a host, an optional port and "
                + "path; nothing else). See docs/configuration.md."
        }
    }

    @Test("A setting another store reads is refused, not silently ignored")
    func settingOfAnotherStore() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = try directory.write(
            "turnkeeper.yaml",
            "synapse: {group: nogroup}\ncoturn:\n  realm: r\n  verify_uri: \"turn:h\"\n  store: redis\n"
                + "  redis: {host: 127.0.0.1}\n  database: /var/lib/turn/turndb\n")
        #expect {
            try Configuration.load(path)
        } throws: { error in
            (error as? TurnkeeperError)?.reason.contains(
                "line 7: coturn.database is only read with coturn.store: sqlite")
                == true
        }
    }

    static let rendered: [Configuration] = [
        Configuration(
            synapse: .init(group: "nogroup"), coturn: .init(realm: "example.org", verifyURI: "turn:127.0.0.1:3478")),
        Configuration(
            synapse: .init(
                configPaths: ["/etc/matrix-synapse/homeserver.yaml"], managedFile: "/etc/matrix-synapse/conf.d/x.yaml",
                secret: .file("/etc/matrix-synapse/turn secret"), group: "nogroup",
                restartCommand: ["/usr/bin/systemctl", "try-restart", "matrix-synapse.service"],
                healthURL: "http://127.0.0.1:8008/health",
                turnURIs: ["turn:turn.example.org?transport=udp", "turns:turn.example.org:5349"],
                turnUserLifetime: "1h", turnAllowGuests: false,
                apiCheck: .init(homeserver: "https://matrix.example.org", accessTokenFile: "/etc/turnkeeper/token")),
            coturn: .init(
                realm: "a\"quoted\\realm", verifyURI: "turn:[::1]:3478?transport=tcp",
                store: .config(.init(restartCommand: ["true"], restartTimeout: .seconds(90))),
                configFile: "/etc/turnserver.conf"),
            rotation: .init(interval: .days(1), margin: .seconds(90), stateDirectory: "/var/lib/tk"),
            daemon: .init(
                listenHost: "::1", listenPort: 9999, probeInterval: .minutes(1), probeURIs: ["turn:h"],
                probeCAFile: "/etc/ca.pem", retryInitial: .seconds(5), retryMax: .hours(2),
                calltestHomeserver: HomeserverURL("https://matrix.example.org"))),
        Configuration(
            synapse: .init(group: "nogroup"),
            coturn: .init(
                realm: "r", verifyURI: "turn:h",
                store: .redis(
                    .init(
                        host: "redis.internal", port: 6380, database: 3, username: "coturn",
                        passwordFile: "/etc/turnkeeper/redis-password", timeout: SynapseDuration(milliseconds: 1500))))),
        Configuration(
            synapse: .init(group: "nogroup"),
            coturn: .init(
                realm: "r", verifyURI: "turn:h",
                store: .postgres(.init(host: "db", database: "turn", user: "tk", passwordFile: "/etc/pw", tls: false)))),
        Configuration(
            synapse: .init(group: "nogroup"),
            coturn: .init(
                realm: "r", verifyURI: "turn:h", store: .postgres(.init(host: "db", tls: true, caFile: "/etc/ca.pem")))),
        Configuration(
            role: .turnHost(
                .init(
                    rootKeyFile: "/etc/turnkeeper/root-key", previousRootKeyFile: "/etc/old", epoch: .hours(12),
                    keepPreviousEpochs: 3, catchUp: .hours(14))),
            coturn: .init(realm: "r", verifyURI: "turn:h")),
        Configuration(
            role: .synapseHost(.init(rootKeyFile: "/etc/turnkeeper/root-key")),
            synapse: .init(group: "nogroup", healthURL: "http://127.0.0.1:8008/health"),
            coturn: .init(realm: "r", verifyURI: "turn:h")),
        Configuration(
            synapse: .init(group: "nogroup"), coturn: .init(realm: "r", verifyURI: "turn:h"),
            consumers: [
                .init(
                    name: "xmpp",
                    kind: .prosody(
                        .init(
                            configFile: "/etc/prosody/conf.d/tk.cfg.lua",
                            prosodyctl: ["prosodyctl", "--config", "/etc/prosody/x.cfg.lua"],
                            hosts: ["meet.example.org", "b\"c"], group: "nogroup", turnHost: "turn.example.org",
                            turnPort: 3479, tlsPort: 5349, tcp: true, turnUser: "jitsi",
                            credentialLifetime: .hours(12)))),
                .init(
                    name: "livekit",
                    kind: .file(
                        .init(
                            path: "/etc/livekit/turn.yaml", template: "/etc/turnkeeper/livekit.yaml", format: .yaml,
                            group: "nogroup", mode: 0o640, command: ["systemctl", "restart", "livekit"],
                            commandTimeout: .seconds(30), verifyURL: "http://127.0.0.1:7880/ice",
                            credentialLifetime: .hours(4)))),
                .init(
                    name: "talk",
                    kind: .file(
                        .init(
                            path: "/etc/turnkeeper/talk.json", template: "/etc/turnkeeper/talk.json.in", format: .json,
                            verifyCommand: ["/usr/local/bin/talk-ice"], credentialLifetime: .days(1)))),
            ]),
    ]

    /// Strings YAML 1.1 would read as something else, or that libyaml would refuse or fold, if written plain.
    static let awkward = [
        "0x1F", "1_000", "2024-01-01", ".inf", "~", "null", "Yes", "0o17", "1:30", "é", "a\u{85}b", "a\u{2028}b",
        "\u{FEFF}x", "\u{1F600}", "\u{9F}", "a\"b\\c", "#x", "x #y", "- x", "[x]", "{x}", "*x", "&x", "!x", "%x", "@x",
        "`x",
    ]

    @Test("Strings YAML would misread or refuse are written so that they read back as they are")
    func awkwardStrings() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var configuration = Configuration(
            synapse: .init(
                managedFile: "/etc/matrix-synapse/conf.d/" + Self.awkward.joined(), group: "nogroup",
                restartCommand: ["systemctl"] + Self.awkward),
            coturn: .init(realm: "r", verifyURI: "turn:h"),
            rotation: .init(stateDirectory: "/var/lib/" + Self.awkward.joined(separator: "/")),
            path: directory.file("turnkeeper.yaml"))
        configuration.synapse.healthURL = "http://h/" + Self.awkward.filter { !$0.contains(" ") }.joined()
        let text = configuration.rendered(header: ["a header\nrole: turn", "\u{2028}role: synapse"])
        _ = try directory.write("turnkeeper.yaml", text)
        #expect(try Configuration.load(configuration.path) == configuration, "\(text)")
        // Only printable ASCII and line feeds in the file: nothing for a reader to fold or refuse.
        #expect(text.unicodeScalars.allSatisfy { ($0.value >= 0x20 && $0.value < 0x7F) || $0 == "\n" })
    }

    @Test("Rendered turnkeeper.yaml reads back to the same configuration", arguments: rendered.indices)
    func roundTrip(index: Int) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var configuration = Self.rendered[index]
        configuration.path = directory.file("turnkeeper.yaml")
        let text = configuration.rendered(header: ["written by a test"])
        _ = try directory.write("turnkeeper.yaml", text)
        let read = try Configuration.load(configuration.path)
        #expect(read == configuration, "\(text)")
        #expect(text.hasPrefix("# written by a test\n"))
    }

    @Test("Loopback is all of 127.0.0.0/8, ::1 and localhost: PostgreSQL's TLS is on for anything else")
    func loopback() {
        for host in ["127.0.0.1", "127.0.0.2", "127.255.0.9", "::1", "localhost"] {
            #expect(Configuration.isLoopback(host), "\(host)")
            #expect(!Configuration.Coturn.Postgres(host: host).tls, "\(host)")
        }
        for host in ["10.0.0.1", "128.0.0.1", "127.1", "127.0.0.256", "db.internal", "::2", "1127.0.0.1"] {
            #expect(!Configuration.isLoopback(host), "\(host)")
            #expect(Configuration.Coturn.Postgres(host: host).tls, "\(host)")
        }
    }

    @Test("Defaults: what an almost empty file means")
    func defaults() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = try directory.write(
            "turnkeeper.yaml", "synapse: {group: nogroup}\ncoturn: {realm: r, verify_uri: \"turn:h\"}\n")
        let read = try Configuration.load(path)
        #expect(
            read
                == Configuration(
                    synapse: .init(group: "nogroup"), coturn: .init(realm: "r", verifyURI: "turn:h"), path: path))
        #expect(read.role == .single && read.coturn.store == .sqlite(database: "/var/lib/turn/turndb"))
        #expect(read.rotation.interval == .days(7) && read.daemon.listenPort == 9478)
    }
}
