import Foundation
import TestSupport
import Testing
import TurnkeeperCore
import TurnkeeperCredentials
import TurnkeeperStores
import TurnkeeperSynapse

@Suite("Synapse's conf.d file as a secret store", .mayBlock, .tags(.live))
struct SynapseSecretStoreTests {
    @Test("Inline and path modes: a Synapse started on turnkeeper's files hands out credentials signed with the secret")
    func realSynapse() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        for mode in [SynapseSecretStore.Mode.inline, .path] {
            let secret = try TurnSecret.generate()
            // Synapse generates its own config; its conf.d gets turnkeeper's file next to the test's overlay.
            let synapse = try SynapseServer(confFiles: [
                "10-inline-from-admin.yaml":
                    "turn_shared_secret: \"anOldInlineSecret\"\nturn_uris: [\"turn:turn.test\"]\n"
            ])
            defer { synapse.stop() }
            let store = SynapseSecretStore(
                confFile: synapse.confD + "/90-turnkeeper.yaml",
                mode: mode,
                secretFile: mode == .path ? directory.file("turn-secret-\(mode)") : nil,
                group: "nogroup",
                options: .init(turnUserLifetime: "10m")
            )
            try store.write(secret)
            #expect(permissions(of: store.confFile) == 0o640)
            if let secretFile = store.secretFile { #expect(permissions(of: secretFile) == 0o640) }
            #expect(try SynapseConfig.load([synapse.homeserverYAML, synapse.confD]).turnSecret == secret)

            // The running Synapse read the old files; a restarted one reads turnkeeper's.
            try synapse.restart()
            let token = try synapse.register("alice\(mode)")
            guard
                case .credentials(let answer) = try await TurnServerClient.fetch(
                    homeserver: synapse.baseURL, accessToken: token)
            else {
                Issue.record("Synapse handed out no TURN credentials in \(mode) mode")
                continue
            }
            let verifier = try CredentialVerifier(secrets: [secret])
            let verdict = verifier.verify(
                username: answer.username, password: answer.password, nowSeconds: Int64(Date().timeIntervalSince1970))
            #expect(
                verdict == .valid(fingerprint: secret.fingerprint, expiry: RESTUsername.expiry(of: answer.username)),
                "\(mode)")
            #expect(answer.ttl == 600)
        }
    }

    @Test("A conf.d file turnkeeper did not write is never overwritten")
    func foreignFile() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let conf = try directory.write("90-turnkeeper.yaml", "turn_shared_secret: mine\n", mode: 0o640)
        let store = SynapseSecretStore(confFile: conf, mode: .inline)
        #expect {
            try store.write(TurnSecret.generate())
        } throws: { error in
            ((error as? TurnkeeperError)?.reason ?? "").contains("not written by turnkeeper")
        }
        #expect(try directory.read("90-turnkeeper.yaml") == "turn_shared_secret: mine\n")
    }
}

@Suite("turnserver.conf's static-auth-secret lines as a secret store", .mayBlock, .tags(.live))
struct CoturnConfigStoreTests {
    static let original = """
        # coturn for turn.example.org
        listening-port=3478

        use-auth-secret
        static-auth-secret = "oldSecretOne"
        # keep this comment where it is
        static-auth-secret oldSecretTwo
        realm=turn.example.org
        no-cli
        """

    @Test("Only the static-auth-secret lines change; every other line keeps its bytes and order")
    func preservesEverythingElse() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = try directory.write("turnserver.conf", Self.original, mode: 0o644)
        let store = CoturnConfigStore(path: path)
        #expect(
            try store.secrets() == [TurnSecret(validating: "oldSecretOne"), TurnSecret(validating: "oldSecretTwo")])
        let a = try TurnSecret.generate()
        let b = try TurnSecret.generate()
        try store.setSecrets([a, b])
        let text = { (s: TurnSecret) in s.withExposedBytes { String(decoding: $0, as: UTF8.self) } }
        let expected = Self.original.split(separator: "\n", omittingEmptySubsequences: false).flatMap {
            line -> [String] in
            if line.hasPrefix("static-auth-secret = ") {
                return ["static-auth-secret=\(text(a))", "static-auth-secret=\(text(b))"]
            }
            if line.hasPrefix("static-auth-secret ") { return [] }
            return [String(line)]
        }
        #expect(try directory.read("turnserver.conf") == expected.joined(separator: "\n"))
        #expect(try store.secrets() == [a, b])
        #expect(permissions(of: path) == 0o640)
    }

    @Test("coturn started on the written file accepts both secrets")
    func coturnAcceptsBoth() throws {
        let server = try CoturnServer(secrets: ["placeholderSecret"])
        defer { server.stop() }
        let a = try TurnSecret.generate()
        let b = try TurnSecret.generate()
        try CoturnConfigStore(path: server.configPath).setSecrets([a, b])
        #expect(!(try String(contentsOfFile: server.configPath, encoding: .utf8)).contains("placeholderSecret"))
        try server.restart()
        let peer = try TurnPeer()
        defer { peer.stop() }
        for secret in [a, b] {
            let credential = try CredentialMinter(secret: secret)
                .credential(user: "@a:b", expiry: Int64(Date().timeIntervalSince1970) + 600)
            let result = try coturnClientAllocates(
                server: server,
                peer: peer,
                username: credential.username,
                password: credential.password
            )
            #expect(result.status == 0, "\(result)")
        }
    }

    @Test(
        "Missing use-auth-secret or realm, or lt-cred-mech beside them: an error that says what to change, and no change",
        arguments: [
            ("listening-port=3478\nrealm=r\n", "use-auth-secret"), ("use-auth-secret\n", "realm="),
            ("use-auth-secret\nrealm=r\nlt-cred-mech\n", "lt-cred-mech"),
        ]
    )
    func refusals(config: String, expected: String) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = try directory.write("turnserver.conf", config)
        #expect {
            try CoturnConfigStore(path: path).setSecrets([TurnSecret.generate()])
        } throws: { error in
            ((error as? TurnkeeperError)?.reason ?? "").contains(expected)
        }
        #expect(try directory.read("turnserver.conf") == config)
    }
}

/// turnserver.conf read as coturn 4.6.1 reads it (read_config_file: `fgets` into 1024 bytes, LF ends a line,
/// CR is trailing white space), and rewritten with every byte but the static-auth-secret lines kept.
@Suite("turnserver.conf lines as coturn reads them", .mayBlock, .tags(.live))
struct CoturnConfigLinesTests {
    static func text(_ secret: TurnSecret) -> String { secret.withExposedBytes { String(decoding: $0, as: UTF8.self) } }

    static func write(_ directory: TemporaryDirectory, _ bytes: [UInt8]) throws -> String {
        let path = directory.file("turnserver.conf")
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else {
            throw TestFailure("cannot create \(path)")
        }
        chmod(path, 0o600)
        return path
    }

    static func read(_ path: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path))) }

    @Test("A CRLF comment above static-auth-secret does not hide it; an all-CRLF file is rewritten in CRLF")
    func crlf() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let original = Array(
            "# coturn\r\nuse-auth-secret\r\nrealm=turn.example.org\r\n# the secret:\r\nstatic-auth-secret=crlfSecret\r\nno-cli\r\n"
                .utf8)
        let path = try Self.write(directory, original)
        let store = CoturnConfigStore(path: path)
        #expect(try store.secrets() == [TurnSecret(validating: "crlfSecret")])
        #expect(try store.secretLines().map(\.line) == [5])
        let new = try TurnSecret.generate()
        try store.setSecrets([new])
        let expected = Array(
            "# coturn\r\nuse-auth-secret\r\nrealm=turn.example.org\r\n# the secret:\r\nstatic-auth-secret=\(Self.text(new))\r\nno-cli\r\n"
                .utf8)
        #expect(try Self.read(path) == expected)
        #expect(try store.secrets() == [new])
    }

    @Test("Mixed endings, non-UTF-8 comments, a file without a final newline: every other byte is kept")
    func bytesKept() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        // "café" in Latin-1 (0xE9), a lone 0xFF, and a CR in the middle of a comment line.
        let head: [UInt8] = Array("# caf".utf8) + [0xE9, 0x0D, 0x0A] + Array("#\u{7F}".utf8) + [0xFF, 0x0A]
        let middle = Array("use-auth-secret\n\t realm = \"turn.example.org\"\r\n# a\rb\n".utf8)
        let tail = Array("no-cli".utf8)
        let path = try Self.write(
            directory, head + middle + Array("static-auth-secret=oldOne\r\n".utf8) + tail)
        let store = CoturnConfigStore(path: path)
        #expect(try store.secretLines().map(\.line) == [6])
        let a = try TurnSecret.generate()
        let b = try TurnSecret.generate()
        try store.setSecrets([a, b])
        // The replaced line ended in CR LF, so the new ones do too.
        let rendered = Array("static-auth-secret=\(Self.text(a))\r\nstatic-auth-secret=\(Self.text(b))\r\n".utf8)
        #expect(try Self.read(path) == head + middle + rendered + tail)
        #expect(try store.secrets() == [a, b])
        // Taking them all out leaves exactly the bytes that were not static-auth-secret lines.
        try store.setSecrets([])
        #expect(try Self.read(path) == head + middle + tail)
    }

    @Test("Without a static-auth-secret line, the new ones go after use-auth-secret, even when it ends the file")
    func insertion() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = try Self.write(directory, Array("realm=r\r\nuse-auth-secret".utf8))
        let secret = try TurnSecret.generate()
        try CoturnConfigStore(path: path).setSecrets([secret])
        #expect(
            try Self.read(path)
                == Array("realm=r\r\nuse-auth-secret\r\nstatic-auth-secret=\(Self.text(secret))\r\n".utf8))
    }

    @Test("Lines longer than 1023 bytes are read in pieces of 1023, as coturn's fgets reads them")
    func longLines() throws {
        // A comment of exactly 1023 bytes: its LF is read alone, as a blank line.
        let exact = Array(("#" + String(repeating: "x", count: 1022)).utf8) + [0x0A]
        // A comment whose second piece is an option: coturn reads it.
        let hiding =
            Array(("#" + String(repeating: "y", count: 1022)).utf8) + Array("static-auth-secret=hiddenSecret\n".utf8)
        // A long comment that fits one piece: an option inside it is part of the comment.
        let short = Array(("#" + String(repeating: "z", count: 900) + " static-auth-secret=notASecret").utf8) + [0x0A]
        let lines = CoturnConfigStore.parse(exact + hiding + short + Array("static-auth-secret=last".utf8))
        #expect(lines.map(\.bytes.count) == [1023, 1, 1023, 32, short.count, 23])
        #expect(lines.map(\.number) == [1, 1, 2, 2, 3, 4])
        #expect(lines.compactMap(\.name) == ["static-auth-secret", "static-auth-secret"])
        #expect(lines.compactMap(\.text) == ["hiddenSecret", "last"])
        #expect(lines.flatMap(\.bytes) == exact + hiding + short + Array("static-auth-secret=last".utf8))
    }

    @Test(
        "Names and values as coturn's parse_arg_string cuts them",
        arguments: [
            ("static-auth-secret=abc", "static-auth-secret", "abc"),
            ("  \tstatic-auth-secret  =  abc \t\r", "static-auth-secret", "abc"),
            ("static-auth-secret \"abc\"", "static-auth-secret", "abc"),
            // coturn drops a leading quote alone, and keeps a closing one without an opening one.
            ("static-auth-secret=\"abc", "static-auth-secret", "abc"),
            ("static-auth-secret=abc\"", "static-auth-secret", "abc\""),
            ("static-auth-secret==abc def", "static-auth-secret", "abc def"),
            // A CR before the name is not skipped: coturn sees an unknown option there.
            ("\rstatic-auth-secret=abc", "\rstatic-auth-secret", "abc"),
            ("use-auth-secret", "use-auth-secret", nil),
            ("  # static-auth-secret=abc", nil, nil),
            ("\r\n", nil, nil),
        ] as [(String, String?, String?)]
    )
    func cutting(line: String, name: String?, value: String?) {
        let parsed = CoturnConfigStore.parse(Array(line.utf8))
        #expect(parsed.first?.name == name)
        #expect(parsed.first?.text == value)
    }

    @Test("A NUL ends the line for coturn, as in C")
    func nul() {
        let parsed = CoturnConfigStore.parse(Array("static-auth-secret=ab".utf8) + [0] + Array("cd\n".utf8))
        #expect(parsed.first?.text == "ab")
    }

    /// The real coturn on a file with CRLF lines, a non-UTF-8 comment, a secret hidden in a long comment's second
    /// piece and a line that only looks like a secret: turnkeeper sees exactly the secrets coturn accepts.
    @Test("coturn accepts exactly the static secrets turnkeeper sees, before and after turnkeeper rewrites the file")
    func realCoturn() async throws {
        let server = try CoturnServer(secrets: [])
        defer { server.stop() }
        let crlf = try TurnSecret.generate()
        let hidden = try TurnSecret.generate()
        let lookalike = try TurnSecret.generate()
        let rendered = try String(contentsOfFile: server.configPath, encoding: .utf8)
        var bytes = Array(rendered.replacingOccurrences(of: "\n", with: "\r\n").utf8)
        bytes += Array("# caf".utf8) + [0xE9, 0xFF] + Array(" comment above the secret\r\n".utf8)
        bytes += Array("static-auth-secret=\(Self.text(crlf))\r\n".utf8)
        bytes += Array(("#" + String(repeating: "y", count: 1022)).utf8)
        bytes += Array("static-auth-secret=\(Self.text(hidden))\r\n".utf8)
        bytes += Array("\rstatic-auth-secret=\(Self.text(lookalike))\r\n".utf8)
        guard FileManager.default.createFile(atPath: server.configPath, contents: Data(bytes)) else {
            throw TestFailure("cannot write \(server.configPath)")
        }
        try server.restart()
        let store = CoturnConfigStore(path: server.configPath)
        #expect(try store.secrets() == [crlf, hidden])

        func accepts(_ secret: TurnSecret) async throws -> Bool {
            let credential = try CredentialMinter(secret: secret)
                .credential(user: "@a:b", expiry: Int64(Date().timeIntervalSince1970) + 600)
            return try await TURNAllocation.succeeds(
                port: server.port, username: credential.username, password: credential.password)
        }
        #expect(try await accepts(crlf))
        #expect(try await accepts(hidden))
        #expect(try await !accepts(lookalike))

        let new = try TurnSecret.generate()
        try store.setSecrets([new])
        // Every byte but the two secret lines is kept: the long comment's first piece, the look-alike line.
        let expected =
            Array(rendered.replacingOccurrences(of: "\n", with: "\r\n").utf8) + Array("# caf".utf8) + [0xE9, 0xFF]
            + Array(" comment above the secret\r\n".utf8) + Array("static-auth-secret=\(Self.text(new))\r\n".utf8)
            + Array(("#" + String(repeating: "y", count: 1022)).utf8)
            + Array("\rstatic-auth-secret=\(Self.text(lookalike))\r\n".utf8)
        #expect(try Self.read(server.configPath) == expected)
        try server.restart()
        #expect(try await accepts(new))
        for old in [crlf, hidden, lookalike] { #expect(try await !accepts(old)) }
    }
}
