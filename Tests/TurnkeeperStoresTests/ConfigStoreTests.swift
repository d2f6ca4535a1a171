import Foundation
import TestSupport
import Testing
import TurnkeeperCore
import TurnkeeperCredentials
import TurnkeeperStores
import TurnkeeperSynapse

@Suite("Synapse's conf.d file as a secret store")
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
                managedOptions: [("turn_user_lifetime", "\"10m\"")]
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

@Suite("turnserver.conf's static-auth-secret lines as a secret store")
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
