import Foundation
import Glibc
import TestSupport
import Testing
import TurnkeeperCredentials

/// `turnkeeper provision`: the bundle, its validation, and the real turnserver accepting what it renders.
@Suite("turnkeeper provision", .mayBlock, .tags(.live))
struct ProvisionTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    static func provision(_ directory: TemporaryDirectory, _ extra: [String], out: String = "bundle") throws
        -> ProcessOutput
    {
        let certificates = try TestCertificates(in: directory)
        return try TurnkeeperBinary.run(
            [
                "provision", "--domain", "turn.example.com", "--cert", certificates.turn.certificate, "--key",
                certificates.turn.key, "--out", directory.file(out),
            ] + extra)
    }

    /// A certificate and key provision must refuse, and what the refusal must say.
    enum BadCertificate: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case der, swapped, wrongName, otherKey, expired, notYetValid, partialWildcard, clientOnly

        var testDescription: String { rawValue }

        func files(_ certificates: TestCertificates) -> (certificate: String, key: String) {
            switch self {
            case .der: (certificates.turnDER, certificates.turn.key)
            case .swapped: (certificates.turn.key, certificates.turn.certificate)
            case .wrongName: certificates.wrongName
            case .otherKey: (certificates.turn.certificate, certificates.good.key)
            case .expired: certificates.turnExpired
            case .notYetValid: certificates.turnNotYetValid
            case .partialWildcard: certificates.turnPartialWildcard
            case .clientOnly: certificates.turnClientOnly
            }
        }

        /// The file the error must name, and words it must hold.
        func expected(_ files: (certificate: String, key: String)) -> (file: String, words: [String]) {
            switch self {
            case .der: (files.certificate, ["is not a PEM certificate", "openssl x509 -inform der"])
            case .swapped: (files.certificate, ["is not a PEM certificate", "swapped"])
            case .wrongName: (files.certificate, ["is not for turn.example.com", "subjectAltName"])
            case .otherKey: (files.key, ["does not belong to --cert \(files.certificate)"])
            case .expired: (files.certificate, ["expired on"])
            case .notYetValid: (files.certificate, ["is not valid before"])
            case .partialWildcard: (files.certificate, ["is not for turn.example.com"])
            case .clientOnly: (files.certificate, ["may not be used by a TLS server"])
            }
        }
    }

    @Test(
        "A certificate coturn or clients would refuse: exit 2, the file and what is wrong, no content, no bundle",
        arguments: BadCertificate.allCases)
    func badCertificate(_ bad: BadCertificate) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let files = bad.files(try TestCertificates(in: directory))
        let output = try TurnkeeperBinary.run([
            "provision", "--domain", "turn.example.com", "--public-address", "198.51.100.7", "--lab", "--cert",
            files.certificate, "--key", files.key, "--out", directory.file("bundle"),
        ])
        #expect(output.status == 2, "\(output)")
        let expected = bad.expected(files)
        #expect(output.stderr.contains(expected.file), "\(output.stderr)")
        for words in expected.words { #expect(output.stderr.contains(words), "\(output.stderr)") }
        // Nothing of either file reaches the output: no PEM armour, no line of base64.
        for path in [files.certificate, files.key] {
            let lines = try String(decoding: Data(contentsOf: URL(fileURLWithPath: path)), as: UTF8.self)
                .split(separator: "\n").filter { $0.count >= 16 }
            for line in lines { #expect(!(output.stdout + output.stderr).contains(line), "\(path) leaked") }
        }
        #expect(!output.stderr.contains("-----"))
        #expect(!FileManager.default.fileExists(atPath: directory.file("bundle")))
    }

    @Test("A certificate that expires within 14 days: the bundle is written, with a warning naming the date")
    func expiringCertificate() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let soon = try TestCertificates(in: directory).turnExpiringSoon
        let output = try TurnkeeperBinary.run([
            "provision", "--domain", "turn.example.com", "--public-address", "198.51.100.7", "--lab", "--cert",
            soon.certificate, "--key", soon.key, "--out", directory.file("bundle"),
        ])
        #expect(output.status == 0, "\(output)")
        #expect(output.stderr.contains("warning: --cert \(soon.certificate) expires on"), "\(output.stderr)")
        #expect(FileManager.default.fileExists(atPath: directory.file("bundle/README.md")))
    }

    @Test("The template in coturn/ is the one the binary renders")
    func template() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        #expect(try Self.provision(directory, ["--public-address", "198.51.100.7", "--lab"]).status == 0)
        let template = try String(contentsOfFile: Self.repository + "/coturn/turnserver.conf.in", encoding: .utf8)
        let rendered = try String(contentsOfFile: directory.file("bundle/turn-host/turnserver.conf"), encoding: .utf8)
        // Line by line: every template line without a placeholder appears as is, in order.
        let fixed = template.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.contains("@") }
        let lines = rendered.split(separator: "\n", omittingEmptySubsequences: false)
        var cursor = lines.startIndex
        for line in fixed {
            guard let found = lines[cursor...].firstIndex(of: line) else {
                Issue.record(
                    "the binary's template lacks \"\(line)\": paste coturn/turnserver.conf.in into TurnserverTemplate.swift"
                )
                return
            }
            cursor = found + 1
        }
        #expect(!rendered.contains("@"), "a placeholder was left unrendered")
    }

    @Test("Rendered for the coturn version given: 4.17.1 gets no line it warns on; 4.6.1 names its advisories")
    func coturnVersions() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        func conf(_ version: [String], _ out: String) throws -> [Substring] {
            let output = try Self.provision(
                directory, ["--public-address", "198.51.100.7", "--lab"] + version, out: out)
            #expect(output.status == 0, "\(output)")
            return try String(contentsOfFile: directory.file(out + "/turn-host/turnserver.conf"), encoding: .utf8)
                .split(separator: "\n")
        }
        // 4.17.1 warns on no-tlsv1 and no-tlsv1_1 and logs no-cli as an error (measured, docs/upstream-coturn.md).
        let upstream = try conf(["--coturn-version", "4.17.1"], "upstream")
        for line in ["no-tlsv1", "no-tlsv1_1", "no-cli", "no-software-attribute"] {
            #expect(!upstream.contains(Substring(line)), "\(line) rendered for 4.17.1")
        }
        #expect(!upstream.contains { $0.contains("carries CVE-") })
        let debian = try conf([], "debian")
        for line in ["no-tlsv1", "no-tlsv1_1", "no-cli", "no-software-attribute"] {
            #expect(debian.contains(Substring(line)), "\(line) missing for 4.6.1")
        }
        #expect(debian.contains { $0.hasPrefix("# coturn 4.6.1 carries CVE-2026-27624") && $0.contains("deny list") })
        #expect(debian.contains("denied-peer-ip=::ffff:0.0.0.0-::ffff:255.255.255.255"))
        #expect(debian.contains("denied-peer-ip=::1-::ffff:ffff"))
        let bad = try Self.provision(
            directory, ["--public-address", "198.51.100.7", "--lab", "--coturn-version", "four"], out: "bad")
        #expect(bad.status == 2 && bad.stderr.contains("--coturn-version"), "\(bad)")
    }

    @Test("Dual stack: a listener and relay per family (external-ip for the one behind NAT), A and AAAA, both allowed")
    func dualStack() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let output = try Self.provision(
            directory,
            [
                "--public-address", "198.51.100.7", "--public-address", "2001:db8::7", "--private-address", "10.0.0.5",
                "--lab",
            ])
        #expect(output.status == 0, "\(output)")
        let bundle = directory.file("bundle")
        let conf = try String(contentsOfFile: bundle + "/turn-host/turnserver.conf", encoding: .utf8)
            .split(separator: "\n")
        for line in [
            "listening-ip=10.0.0.5", "relay-ip=10.0.0.5", "external-ip=198.51.100.7/10.0.0.5",
            "listening-ip=2001:db8::7", "relay-ip=2001:db8::7", "allowed-peer-ip=198.51.100.7",
            "allowed-peer-ip=2001:db8::7",
        ] {
            #expect(conf.contains(Substring(line)), "missing \(line)")
        }
        #expect(!conf.contains { $0.hasPrefix("external-ip=2001") })
        let dns = try String(contentsOfFile: bundle + "/dns.txt", encoding: .utf8)
        #expect(dns.contains("IN\tA\t198.51.100.7") && dns.contains("IN\tAAAA\t2001:db8::7"), "\(dns)")
        for (arguments, expected) in [
            (["--public-address", "198.51.100.7", "--public-address", "198.51.100.8"], "given twice for IPv4"),
            (
                ["--public-address", "198.51.100.7", "--private-address", "fd00::5"],
                "no --public-address of its family"
            ),
        ] {
            let refused = try Self.provision(directory, arguments + ["--lab"], out: "refused")
            #expect(refused.status == 2 && refused.stderr.contains(expected), "\(refused)")
        }
    }

    @Test("The bundle: every file rendered with real values and the right mode, units and rules that verify")
    func bundle() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let output = try Self.provision(
            directory,
            ["--public-address", "198.51.100.7", "--private-address", "10.0.0.5"] + [
                "--lab"
            ])
        #expect(output.status == 0, "\(output)")
        let bundle = directory.file("bundle")
        func read(_ path: String) throws -> String { try String(contentsOfFile: bundle + "/" + path, encoding: .utf8) }
        let conf = try read("turn-host/turnserver.conf")
        for line in [
            "listening-ip=10.0.0.5", "relay-ip=10.0.0.5", "external-ip=198.51.100.7/10.0.0.5", "use-auth-secret",
            "realm=turn.example.com", "no-cli", "no-multicast-peers", "no-tlsv1", "no-tlsv1_1", "user-quota=12",
            "total-quota=1200", "min-port=49152", "max-port=65535", "log-file=stdout",
            "denied-peer-ip=10.0.0.0-10.255.255.255", "denied-peer-ip=fe80::-feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "allowed-peer-ip=198.51.100.7", "userdb=/var/lib/turn/turndb",
        ] {
            #expect(conf.split(separator: "\n").contains(Substring(line)), "missing \(line)")
        }
        #expect(!conf.contains("@") && !conf.split(separator: "\n").contains("syslog"))
        #expect(conf.split(separator: "\n").filter { $0.hasPrefix("denied-peer-ip=") }.count == 23)
        // The bundle names every file the admin installs, and the key both hosts share is 0600 in both.
        for key in ["turn-host/root-key", "synapse-host/root-key"] {
            #expect(permissions(of: bundle + "/" + key) == 0o600)
        }
        #expect(try read("turn-host/root-key") == (try read("synapse-host/root-key")))
        #expect(permissions(of: bundle + "/turn-host/turnserver.conf") == 0o640)
        #expect(
            try read("synapse-host/conf.d/60-turn.yaml").contains(
                #"turn_uris: ["turn:turn.example.com?transport=udp", "turn:turn.example.com?transport=tcp", "turns:turn.example.com:5349?transport=tcp"]"#
            ))
        #expect(try read("dns.txt").contains("turn.example.com.\t3600\tIN\tA\t198.51.100.7"))
        #expect(try read("README.md").contains("Forward UDP and TCP 3478 and 5349, and UDP 49152-65535, to 10.0.0.5"))

        // The nftables rules parse; the units verify.
        let nft = try ProcessRunner.which("nft", package: "nftables")
        let check = try ProcessRunner.run(nft, ["-c", "-f", bundle + "/turn-host/nftables-turn.nft"])
        #expect(check.status == 0, "\(check)")
        let analyze = try ProcessRunner.which("systemd-analyze", package: "systemd")
        for unit in ["turn-host/coturn-certificates.path", "turn-host/coturn-certificates.service"] {
            let verify = try ProcessRunner.run(analyze, ["verify", bundle + "/" + unit])
            #expect(verify.status == 0, "\(unit): \(verify)")
        }
        // Both turnkeeper configurations load (with their paths pointed into the bundle).
        for host in ["turn-host", "synapse-host"] {
            let text = try read("\(host)/turnkeeper.yaml")
                .replacingOccurrences(of: "/etc/turnkeeper/root-key", with: "\(bundle)/\(host)/root-key")
                .replacingOccurrences(of: "/var/lib/turnkeeper", with: directory.file("state-\(host)"))
                .replacingOccurrences(of: "/etc/matrix-synapse", with: directory.file("synapse"))
                // This machine has no matrix-synapse group, and a group that does not exist is refused.
                .replacingOccurrences(of: "group: matrix-synapse", with: "group: nogroup")
            let config = try directory.write("\(host).yaml", text)
            try? FileManager.default.createDirectory(
                atPath: directory.file("synapse/conf.d"), withIntermediateDirectories: true)
            _ = try? directory.write("synapse/homeserver.yaml", "server_name: example.com\n")
            let status = try TurnkeeperBinary.run(["status", "--config", config])
            #expect(status.status == 0 && status.stdout.contains("epoch"), "\(host): \(status)")
        }
    }

    @Test(
        "Bad input: a clear error, exit 2, and no bundle, not even half of one",
        arguments: [
            (["--public-address", "300.1.2.3"], "not an IPv4 or IPv6 address"),
            (["--public-address", "10.1.2.3"], "denied peer range 10.0.0.0-10.255.255.255"),
            (["--public-address", "198.51.100.7", "--lab", "--min-port", "60000", "--max-port", "50000"], "inverted"),
            (
                ["--public-address", "198.51.100.7", "--lab", "--min-port", "50000", "--max-port", "50099"],
                "fewer than --total-quota 1200"
            ),
            (["--public-address", "198.51.100.7", "--lab", "--private-address", "nope"], "--private-address nope"),
            (["--public-address", "198.51.100.7", "--lab", "--epoch", "1h"], "twice --turn-user-lifetime"),
        ]
    )
    func badInput(arguments: [String], expected: String) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let output = try Self.provision(directory, arguments)
        #expect(output.status == 2, "\(output)")
        #expect(output.stderr.contains(expected), "\(output.stderr)")
        #expect(!FileManager.default.fileExists(atPath: directory.file("bundle")))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasPrefix(".") }
        #expect(leftovers.isEmpty)
    }

    @Test("--apply installs one host's part; an admin's existing file is kept aside, never overwritten")
    func apply() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let root = directory.file("root")
        try FileManager.default.createDirectory(atPath: root + "/etc", withIntermediateDirectories: true)
        _ = try directory.write("root/etc/turnserver.conf", "# the admin's own\n")
        let output = try Self.provision(
            directory, ["--public-address", "198.51.100.7", "--lab", "--apply", "turn-host", "--root", root])
        #expect(output.status == 0, "\(output)")
        #expect(output.stdout.contains("kept the previous /etc/turnserver.conf as /etc/turnserver.conf.turnkeeper-old"))
        #expect(
            try String(contentsOfFile: root + "/etc/turnserver.conf.turnkeeper-old", encoding: .utf8)
                == "# the admin's own\n")
        let installed = try String(contentsOfFile: root + "/etc/turnserver.conf", encoding: .utf8)
        #expect(
            installed
                == (try String(contentsOfFile: directory.file("bundle/turn-host/turnserver.conf"), encoding: .utf8)))
        for path in [
            "/etc/systemd/system/coturn.service.d/turnkeeper.conf", "/etc/systemd/system/coturn-certificates.path",
            "/etc/nftables.d/turn.nft", "/etc/turnkeeper/turnkeeper.yaml",
        ] {
            #expect(FileManager.default.fileExists(atPath: root + path), "\(path)")
        }
        #expect(permissions(of: root + "/etc/turnkeeper/root-key") == 0o600)
        // The Synapse host's part is not this host's: nothing of it was installed.
        #expect(!FileManager.default.fileExists(atPath: root + "/etc/matrix-synapse"))
        let bad = try Self.provision(
            directory, ["--public-address", "198.51.100.7", "--lab", "--apply", "both"], out: "other")
        #expect(bad.status == 2 && bad.stderr.contains("turn-host or synapse-host"))
    }

    @Test("A root key rotation: with previous_root_key_file the TURN host holds both keys' epochs; without, one")
    func rootKeyRotation() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        // A real coturn on the database: each retirement is proven by an allocation it refuses.
        let coturn = try CoturnServer(secrets: [])
        defer { coturn.stop() }
        let database = coturn.userDatabase
        let python = try ProcessRunner.which("python3", package: "python3")
        let old = try directory.write(
            "old-key", try TurnSecret.generate().withExposedBytes { String(decoding: $0, as: UTF8.self) } + "\n")
        let new = try directory.write(
            "new-key", try TurnSecret.generate().withExposedBytes { String(decoding: $0, as: UTF8.self) } + "\n")
        func config(_ key: String, previous: String? = nil) throws -> String {
            var yaml = TestConfiguration(
                synapse: nil, coturn: .init(realm: coturn.realm, verifyURI: "turn:127.0.0.1:\(coturn.port)"),
                rotation: .init(stateDirectory: directory.file("state")))
            yaml.role = "turn"
            yaml.coturn.database = database
            yaml.rotation.rootKeyFile = key
            yaml.rotation.previousRootKeyFile = previous
            yaml.rotation.epoch = "1h"
            return try directory.write("turn.yaml", try yaml.render())
        }
        func rows() throws -> Int {
            let count = try ProcessRunner.run(
                python,
                [
                    "-c",
                    "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT COUNT(*) FROM turn_secret').fetchone()[0])",
                    database,
                ])
            return Int(count.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
        }
        #expect(try TurnkeeperBinary.run(["rotate", "--config", try config(old)]).status == 0)
        #expect(try rows() == 3)
        let both = try TurnkeeperBinary.run([
            "rotate", "--config", try config(new, previous: old),
        ])
        #expect(both.status == 0, "\(both)")
        #expect(try rows() == 6)
        let done = try TurnkeeperBinary.run(["rotate", "--config", try config(new)])
        #expect(done.status == 0 && done.stdout.contains("retired epoch"), "\(done)")
        #expect(try rows() == 3)
        let epochs = EpochSecrets(rootKey: try SecretFile.read(new).secret, realm: coturn.realm, length: 3600)
        let now = Int64(Date().timeIntervalSince1970)
        let current = try epochs.secret(for: epochs.epoch(at: now)).withExposedBytes {
            String(decoding: $0, as: UTF8.self)
        }
        // The secret goes to Python on stdin, not on its command line.
        let held = try ProcessRunner.run(
            python,
            [
                "-c",
                "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT COUNT(*) FROM turn_secret WHERE value = ?', (sys.stdin.read().strip(),)).fetchone()[0])",
                database,
            ],
            stdin: current)
        #expect(held.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "1")
    }

    @Test("A missing certificate, and an existing output directory, are refused before anything is written")
    func missingCertificateAndExistingOutput() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let missing = try TurnkeeperBinary.run([
            "provision", "--domain", "turn.example.com", "--public-address", "198.51.100.7", "--lab", "--cert",
            "/nonexistent/fullchain.pem", "--key", "/nonexistent/privkey.pem", "--out", directory.file("bundle"),
        ])
        #expect(missing.status == 2 && missing.stderr.contains("--cert /nonexistent/fullchain.pem does not exist"))
        #expect(!FileManager.default.fileExists(atPath: directory.file("bundle")))
        try FileManager.default.createDirectory(atPath: directory.file("taken"), withIntermediateDirectories: false)
        _ = try directory.write("taken/mine", "keep\n")
        let existing = try Self.provision(directory, ["--public-address", "198.51.100.7", "--lab"], out: "taken")
        #expect(existing.status == 2 && existing.stderr.contains("already exists"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.file("taken")) == ["mine"])
    }

    @Test("The real turnserver runs the rendered config on the lab's public address: probe passes, private peer 403")
    func turnserverAccepts() async throws {
        let lab = try NATLab()
        defer { #expect(lab.down().isEmpty) }
        let output = try Self.provision(
            lab.directory,
            [
                "--public-address", "203.0.113.10", "--lab", "--min-port", "49152", "--max-port", "49407",
                "--total-quota",
                "200",
            ])
        #expect(output.status == 0, "\(output)")
        let bundle = lab.directory.file("bundle")
        // Only the database moves into the test's directory; everything else runs as rendered.
        let conf = try String(contentsOfFile: bundle + "/turn-host/turnserver.conf", encoding: .utf8)
            .replacingOccurrences(of: "userdb=/var/lib/turn/turndb", with: "userdb=\(lab.directory.file("turndb"))")
        let confPath = try lab.directory.write("turnserver.conf", conf)
        let coturn = try LabCoturn(lab: lab, host: "turn", configPath: confPath, answeringAt: "203.0.113.10")
        defer { coturn.stop() }

        // The TURN host's turnkeeper puts this epoch's secrets into coturn's database.
        let turnConfig = try lab.directory.write(
            "turn.yaml",
            try String(contentsOfFile: bundle + "/turn-host/turnkeeper.yaml", encoding: .utf8)
                .replacingOccurrences(of: "/etc/turnkeeper/root-key", with: bundle + "/turn-host/root-key")
                .replacingOccurrences(of: "/var/lib/turnkeeper", with: lab.directory.file("state"))
                .replacingOccurrences(of: "/var/lib/turn/turndb", with: lab.directory.file("turndb")))
        let sync = try lab.run("turn", [TurnkeeperBinary.path, "rotate", "--config", turnConfig])
        #expect(sync.status == 0 && sync.stdout.contains("coturn accepts epochs"), "\(sync)")

        let rootKey = try SecretFile.read(bundle + "/turn-host/root-key").secret
        let epochs = EpochSecrets(rootKey: rootKey, realm: "turn.example.com", length: 86_400)
        let secret = try epochs.secret(for: epochs.epoch(at: Int64(Date().timeIntervalSince1970)))
        let secretFile = try lab.directory.write(
            "epoch-secret", secret.withExposedBytes { String(decoding: $0, as: UTF8.self) } + "\n")
        let probe = try lab.run(
            "alice", [TurnkeeperBinary.path, "probe", "turn:203.0.113.10?transport=udp", "--secret-file", secretFile])
        #expect(probe.status == 0 && probe.stdout.contains("relayChannelData"), "\(probe)")

        // A peer in a private range: coturn's own client asks for a channel to 192.168.1.1 and gets 403.
        let uclient = try ProcessRunner.which("turnutils_uclient", package: "coturn")
        let forbidden = try lab.run(
            "alice",
            [
                "/usr/bin/timeout", "20", uclient, "-W",
                secret.withExposedBytes { String(decoding: $0, as: UTF8.self) },
                "-e", "192.168.1.1", "-r", "3480", "-n", "1", "-m", "1", "-c", "203.0.113.10",
            ])
        #expect(forbidden.stdout.contains("403 (Forbidden IP)"), "\(forbidden)")

        // The rendered config passes the audit by construction: no open door, quotas in force, no SOFTWARE.
        let audit = try lab.run(
            "alice",
            [
                TurnkeeperBinary.path, "audit", "turn:203.0.113.10?transport=udp", "turn:203.0.113.10?transport=tcp",
                "--secret-file", secretFile,
            ], timeout: .seconds(120))
        #expect(audit.status == 0 && audit.stdout.contains("No findings"), "\(audit)")
    }
}
