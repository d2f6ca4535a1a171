import Foundation
import TestSupport
import Testing
import TurnkeeperCredentials

/// `turnkeeper check` on a deployment laid out on disk: Synapse's config directory, coturn's database
/// (coturn's own schema) and turnserver.conf, each broken in one way at a time.
@Suite("turnkeeper check", .mayBlock, .tags(.live))
struct CheckCommandTests {
    struct Layout {
        let directory: TemporaryDirectory
        let secret: String
        let config: String
        var synapse: String { directory.file("synapse") }
        var turnserver: String { directory.file("turnserver.conf") }
        var database: String { directory.file("turndb") }

        func sql(_ statement: String) throws {
            let python = try ProcessRunner.which("python3", package: "python3")
            let output = try ProcessRunner.run(
                python,
                [
                    "-c",
                    "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.executescript(sys.stdin.read()); c.commit()",
                    database,
                ],
                stdin: statement
            )
            guard output.status == 0 else { throw TestFailure("sqlite: \(output)") }
        }

        func check() throws -> ProcessOutput { try TurnkeeperBinary.run(["check", "--config", config]) }
    }

    /// A healthy deployment.
    static func layout() throws -> Layout {
        let directory = try TemporaryDirectory()
        let secret = try TurnSecret.generate().withExposedBytes { String(decoding: $0, as: UTF8.self) }
        try FileManager.default.createDirectory(
            atPath: directory.file("synapse/conf.d"), withIntermediateDirectories: true)
        try directory.write(
            "synapse/homeserver.yaml",
            "server_name: x\nturn_uris: [\"turn:turn.example.org?transport=udp\"]\nturn_shared_secret: \"\(secret)\"\n"
        )
        try directory.write(
            "turnserver.conf",
            "use-auth-secret\nrealm=turn.example.org\nlog-file=stdout\ndenied-peer-ip=10.0.0.0-10.255.255.255\n"
                // What closes CVE-2026-27624 on Debian's 4.6.1, whatever this host's addresses.
                + "denied-peer-ip=::ffff:0.0.0.0-::ffff:255.255.255.255\n"
        )
        var synapse = TestConfiguration.Synapse(
            config: [directory.file("synapse/homeserver.yaml"), directory.file("synapse/conf.d")])
        synapse.managedFile = directory.file("synapse/conf.d/90-turnkeeper.yaml")
        var yaml = TestConfiguration(
            synapse: synapse, coturn: .init(realm: "turn.example.org", verifyURI: "turn:turn.example.org"),
            rotation: .init(stateDirectory: directory.file("state")))
        yaml.coturn.database = directory.file("turndb")
        yaml.coturn.configFile = directory.file("turnserver.conf")
        let config = try directory.write("turnkeeper.yaml", try yaml.render())
        let layout = Layout(directory: directory, secret: secret, config: config)
        let schema = try String(contentsOfFile: "/usr/share/coturn/schema.sql", encoding: .utf8)
        try layout.sql(schema + "\nINSERT INTO turn_secret (realm, value) VALUES ('turn.example.org', '\(secret)');")
        return layout
    }

    @Test("A healthy deployment passes, and no secret is printed")
    func clean() throws {
        let layout = try Self.layout()
        defer { layout.directory.remove() }
        let output = try layout.check()
        #expect(output.status == 0, "\(output)")
        #expect(output.stdout.contains("coturn accepts the secret Synapse uses"))
        #expect(!output.stdout.contains(layout.secret) && !output.stderr.contains(layout.secret))
    }

    @Test("coturn logging to syslog, as Debian ships it, passes: turnkeeper never signals coturn (issue 26)")
    func syslogPasses() throws {
        let layout = try Self.layout()
        defer { layout.directory.remove() }
        try layout.directory.write("turnserver.conf", try layout.directory.read("turnserver.conf") + "syslog\n")
        let output = try layout.check()
        #expect(output.status == 0, "\(output)")
        #expect(output.stdout.contains("logs to syslog, as Debian ships it"), "\(output)")
    }

    @Test("The installed coturn's CVE-2026-27624 is named when turnserver.conf gives it an IPv6 relay without the fix")
    func installedAdvisory() throws {
        let layout = try Self.layout()
        defer { layout.directory.remove() }
        try layout.directory.write(
            "turnserver.conf",
            "use-auth-secret\nrealm=turn.example.org\nrelay-ip=::1\ndenied-peer-ip=10.0.0.0-10.255.255.255\n")
        let output = try layout.check()
        let installed = try ProcessRunner.run("/usr/bin/dpkg-query", ["--show", "--showformat=${Version}", "coturn"])
        let version = installed.stdout.split(separator: ".").prefix(2).compactMap { Int($0.prefix { $0.isNumber }) }
        // Debian's coturn is 4.6.1 (bookworm to sid): before 4.9.0, the mapped IPv4 forms pass the deny list.
        if version.lexicographicallyPrecedes([4, 9]) {
            #expect(output.status == 1, "\(output)")
            #expect(output.stdout.contains("carries CVE-2026-27624"), "\(output)")
            #expect(output.stdout.contains("denied-peer-ip=::ffff:0.0.0.0-::ffff:255.255.255.255"), "\(output)")
        } else {
            #expect(!output.stdout.contains("carries CVE-2026-27624"), "\(installed.stdout): \(output)")
        }
    }

    @Test(
        "Each mistake is named, with exit 1",
        arguments: [
            "secret-mismatch", "realm-rows", "lt-cred-mech", "no-use-auth-secret", "no-denied-peer-ip",
            "inline-and-path", "empty-secret-file", "no-turn-uris", "bad-uri", "override", "realm-mismatch",
            "static-beside-database",
        ]
    )
    func problems(mistake: String) throws {
        let layout = try Self.layout()
        defer { layout.directory.remove() }
        let d = layout.directory
        let expected: String
        switch mistake {
        case "secret-mismatch":
            try layout.sql("DELETE FROM turn_secret;")
            expected = "coturn does not accept the secret Synapse uses"
        case "realm-rows":
            try layout.sql("INSERT INTO turn_secret (realm, value) VALUES ('other.example.org', 'x');")
            expected = "realm \"other.example.org\""
        case "lt-cred-mech":
            try d.write("turnserver.conf", try d.read("turnserver.conf") + "lt-cred-mech\n")
            expected = "lt-cred-mech"
        case "no-use-auth-secret":
            try d.write("turnserver.conf", "realm=turn.example.org\ndenied-peer-ip=10.0.0.0-10.255.255.255\n")
            expected = "lacks use-auth-secret"
        case "no-denied-peer-ip":
            try d.write("turnserver.conf", "use-auth-secret\nrealm=turn.example.org\n")
            expected = "no denied-peer-ip"
        case "inline-and-path":
            try d.write("synapse/conf.d/50-path.yaml", "turn_shared_secret_path: /etc/x\n")
            expected = "refuses to start"
        case "empty-secret-file":
            let file = try d.write("empty-secret", "\n", mode: 0o640)
            try d.write("synapse/conf.d/50-path.yaml", "turn_shared_secret: null\nturn_shared_secret_path: \(file)\n")
            expected = "answers {}"
        case "no-turn-uris":
            try d.write("synapse/conf.d/50-uris.yaml", "turn_uris: []\n")
            expected = "no turn_uris"
        case "bad-uri":
            try d.write("synapse/conf.d/50-uris.yaml", "turn_uris: [\"https://turn.example.org\"]\n")
            expected = "not a STUN/TURN URI"
        case "override":
            try d.write(
                "synapse/conf.d/90-turnkeeper.yaml",
                "# Managed by turnkeeper\nturn_shared_secret: \"\(layout.secret)\"\n")
            try d.write("synapse/conf.d/99-admin.yaml", "turn_shared_secret: \"\(layout.secret)\"\n")
            expected = "overrides every rotation"
        case "static-beside-database":
            // coturn accepts it beside the database's secrets: no rotation could retire it. Named by fingerprint.
            try d.write(
                "turnserver.conf",
                try d.read("turnserver.conf") + "# left over\r\nstatic-auth-secret=\(layout.secret)\r\n")
            expected =
                "turnserver.conf, line 7: static-auth-secret (\(try TurnSecret(validating: layout.secret).fingerprint)) beside"
        default:
            try d.write(
                "turnserver.conf", "use-auth-secret\nrealm=other.example.org\ndenied-peer-ip=10.0.0.0-10.255.255.255\n")
            expected = "realm=other.example.org"
        }
        let output = try layout.check()
        // Both secret options set is a configuration Synapse refuses to start with: exit 2, as for any such file.
        #expect(output.status == (mistake == "inline-and-path" ? 2 : 1), "\(mistake): \(output)")
        #expect(output.stdout.contains(expected) || output.stderr.contains(expected), "\(mistake): \(output)")
        #expect(!output.stdout.contains(layout.secret) && !output.stderr.contains(layout.secret))
    }

    @Test(
        "A realm mismatch is attributed to the side that has it, with the realm to set, and never the advice to rotate",
        arguments: [true, false]
    )
    func realmAttribution(coturnRealmKnown: Bool) throws {
        let layout = try Self.layout()
        defer { layout.directory.remove() }
        // coturn and its database agree on other.example.org; turnkeeper.yaml says turn.example.org.
        try layout.sql("UPDATE turn_secret SET realm = 'other.example.org';")
        let expected: [String]
        if coturnRealmKnown {
            try layout.directory.write(
                "turnserver.conf",
                "use-auth-secret\nrealm=other.example.org\nlog-file=stdout\ndenied-peer-ip=10.0.0.0-10.255.255.255\n")
            expected = [
                "turnserver.conf, line 2 sets realm=other.example.org, coturn's realm, but turnkeeper's coturn.realm is "
                    + "\"turn.example.org\"",
                "Set coturn.realm: other.example.org in \(layout.config)",
            ]
        } else {
            // Without turnserver.conf, coturn's realm is unknown: the database says where Synapse's secret is.
            try FileManager.default.removeItem(atPath: layout.turnserver)
            let config = try layout.directory.read("turnkeeper.yaml").components(separatedBy: "\n")
                .filter { !$0.contains("config_file") }
            try layout.directory.write("turnkeeper.yaml", config.joined(separator: "\n"))
            expected = [
                "holds the secret Synapse uses (\(try TurnSecret(validating: layout.secret).fingerprint)) only under "
                    + "realm \"other.example.org\", not under turnkeeper's coturn.realm \"turn.example.org\"",
                "Set coturn.realm in \(layout.config) to coturn's realm=",
            ]
        }
        let output = try layout.check()
        #expect(output.status == 1, "\(output)")
        for text in expected { #expect(output.stdout.contains(text), "\(text)\n\(output)") }
        #expect(!output.stdout.contains("turnkeeper rotate"), "\(output)")
        #expect(!output.stdout.contains("coturn (realm turn.example.org)"), "\(output)")
    }

    @Test("What cannot be read is exit 2, naming the file and the line")
    func unreadable() throws {
        let layout = try Self.layout()
        defer { layout.directory.remove() }
        try layout.directory.write("synapse/conf.d/50-broken.yaml", "turn_uris: [\"turn:a\"\nx: 1\n")
        let broken = try layout.check()
        #expect(broken.status == 2)
        #expect(broken.stderr.contains("50-broken.yaml") && broken.stderr.contains("line"))
        try FileManager.default.removeItem(atPath: layout.directory.file("synapse/conf.d/50-broken.yaml"))
        try FileManager.default.removeItem(atPath: layout.database)
        let missing = try layout.check()
        #expect(missing.status == 2)
        #expect(missing.stderr.contains(layout.database))
    }
}
