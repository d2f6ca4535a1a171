import TestSupport
import Testing
import TurnkeeperCore
import TurnkeeperCredentialSource
import TurnkeeperCredentials
import TurnkeeperTURNClient

/// The one place probe, call and the daemon get TURN credentials from.
@Suite("Credential sources", .mayBlock)
struct CredentialSourceTests {
    let directory: TemporaryDirectory
    let secret: TurnSecret
    let secretText: String
    /// 2001-09-09 01:46:40 UTC: fixed, so expiries are exact.
    let now: Int64 = 1_000_000_000_000

    init() throws {
        directory = try TemporaryDirectory()
        secret = try TurnSecret.generate()
        secretText = secret.withExposedBytes { String(decoding: $0, as: UTF8.self) }
    }

    private func minted(user: String, expiry: Int64) throws -> TurnCredential {
        try CredentialMinter(secret: secret).credential(user: user, expiry: expiry)
    }

    @Test("A secret and a secret file mint as Synapse does: the same credential, expiring after the lifetime")
    func secretAndFile() async throws {
        defer { directory.remove() }
        let file = try directory.write("secret", secretText + "\n")
        let expected = try minted(user: "@a:b", expiry: now / 1000 + 300)
        for source in [CredentialSource.secret(secret), .secretFile(file)] {
            let resolved = try await source.resolve(
                user: "@a:b", lifetime: SynapseDuration(milliseconds: 300_000), nowMilliseconds: now)
            #expect(resolved.credentials?.username == expected.username)
            #expect(resolved.credentials?.password == expected.password)
            #expect(resolved.expiry == now / 1000 + 300)
            #expect(resolved.uris.isEmpty)
        }
    }

    @Test("Synapse's config: its secret, its turn_user_lifetime (not the caller's) and its turn_uris")
    func synapseConfig() async throws {
        defer { directory.remove() }
        let config = try directory.write(
            "homeserver.yaml",
            "server_name: x\nturn_uris: [\"turn:a\", \"turn:b?transport=tcp\"]\nturn_shared_secret: \(secretText)\n"
                + "turn_user_lifetime: 1h\n")
        let resolved = try await CredentialSource.synapseConfig([config]).resolve(
            user: "@a:b", lifetime: SynapseDuration(milliseconds: 300_000), nowMilliseconds: now)
        #expect(resolved.credentials?.username == (try minted(user: "@a:b", expiry: now / 1000 + 3600)).username)
        #expect(resolved.expiry == now / 1000 + 3600)
        #expect(resolved.uris == ["turn:a", "turn:b?transport=tcp"])
    }

    @Test("Synapse's config without a secret is a failed check naming the files, not a credential-less probe")
    func synapseConfigWithoutSecret() async throws {
        defer { directory.remove() }
        let config = try directory.write("homeserver.yaml", "server_name: x\nturn_uris: [\"turn:a\"]\n")
        await #expect {
            try await CredentialSource.synapseConfig([config]).resolve(
                user: "@a:b", lifetime: SynapseDuration(milliseconds: 300_000))
        } throws: { error in
            guard let error = error as? TurnkeeperError else { return false }
            return error.code == .checkFailed && error.reason.contains(config)
                && error.reason.contains("sets no turn_shared_secret")
        }
    }

    @Test("Many users: minting sources give each their own credential for the run's lifetime; others share one")
    func manyUsers() async throws {
        defer { directory.remove() }
        let users = ["@a:b", "@c:d", "@e:f"]
        // Synapse hands out an hour; a load run asking for two gets two.
        let config = try directory.write(
            "homeserver.yaml", "server_name: x\nturn_shared_secret: \(secretText)\nturn_user_lifetime: 1h\n")
        for source in [CredentialSource.secret(secret), .synapseConfig([config])] {
            let many = try await source.resolve(
                users: users, lifetime: SynapseDuration(milliseconds: 7_200_000), nowMilliseconds: now)
            #expect(many.perUser && many.expiry == now / 1000 + 7200)
            for (user, credential) in zip(users, many.credentials) {
                let expected = try minted(user: user, expiry: now / 1000 + 7200)
                #expect(credential == TURNCredentials(username: expected.username, password: expected.password))
            }
        }
        let password = try directory.write("password", "pass word\n")
        let shared = try await CredentialSource.credential(username: "1700000000:@a:b", passwordFile: password)
            .resolve(users: users, lifetime: SynapseDuration(milliseconds: 7_200_000), nowMilliseconds: now)
        #expect(!shared.perUser && shared.expiry == 1_700_000_000 && Set(shared.credentials).count == 1)
        #expect(shared.credentials.count == 3)
        let none = try await CredentialSource.none.resolve(users: users, lifetime: .init(milliseconds: 1000))
        #expect(none.credentials.isEmpty)
    }

    @Test("A client's credential is passed as given; its expiry is read from a TURN REST username")
    func givenCredential() async throws {
        defer { directory.remove() }
        let password = try directory.write("password", "pass word\n")
        let rest = try await CredentialSource.credential(username: "1700000000:@a:b", passwordFile: password)
            .resolve(user: "@ignored:x", lifetime: SynapseDuration(milliseconds: 1000))
        #expect(rest.credentials == TURNCredentials(username: "1700000000:@a:b", password: "pass word"))
        #expect(rest.expiry == 1_700_000_000)
        let plain = try await CredentialSource.credential(username: "alice", passwordFile: password)
            .resolve(user: "@ignored:x", lifetime: SynapseDuration(milliseconds: 1000))
        #expect(plain.credentials?.username == "alice" && plain.expiry == nil)
    }

    @Test("No source: no credentials, so only a Binding can be tested")
    func none() async throws {
        defer { directory.remove() }
        let resolved = try await CredentialSource.none.resolve(
            user: "@a:b", lifetime: SynapseDuration(milliseconds: 1000))
        #expect(resolved.credentials == nil && resolved.expiry == nil && resolved.uris.isEmpty)
    }
}
