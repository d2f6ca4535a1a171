import Foundation
import TestSupport
import Testing
import TurnkeeperCore
import TurnkeeperCredentials

@Suite("TURN REST credentials", .mayBlock)
struct CredentialTests {
    @Test("Equal to Synapse's own formula, run by Python, for 400 random secrets, users and lifetimes")
    func matchesSynapse() throws {
        let users = ["@alice:example.org", "@bob:matrix.example.com", "@_bridge-user=42:a.b", "@zoë:例え.jp", "@x:y"]
        var cases: [PythonReference.Case] = []
        var secrets: [TurnSecret] = []
        for index in 0..<400 {
            let secret = try TurnSecret.generate(length: Int.random(in: 1...96))
            secrets.append(secret)
            cases.append(
                .init(
                    secret: secret.withExposedBytes { String(decoding: $0, as: UTF8.self) },
                    user: users[index % users.count] + (index % 3 == 0 ? "\(index)" : ""),
                    nowMilliseconds: Int64.random(in: 1_600_000_000_000...2_000_000_000_000),
                    lifetimeMilliseconds: Int64.random(in: 1000...604_800_000)
                )
            )
        }
        let expected = try PythonReference.credentials(cases)
        #expect(expected.count == cases.count)
        for (index, (testCase, answer)) in zip(cases, expected).enumerated() {
            let minter = try CredentialMinter(secret: secrets[index])
            let lifetime = SynapseDuration(milliseconds: testCase.lifetimeMilliseconds)
            let credential = minter.credential(
                user: testCase.user, lifetime: lifetime, nowMilliseconds: testCase.nowMilliseconds)
            #expect(credential.username == answer.username)
            #expect(credential.password == answer.password)
            #expect(credential.password.count == 28)
            #expect(lifetime.seconds == answer.ttl)
        }
    }

    @Test(
        "Expiry read from usernames the way coturn reads it",
        arguments: [
            ("1795710971:@alice:example.org", 1_795_710_971), ("1795710971", 1_795_710_971),
            (":1795710971", 1_795_710_971),
            ("@alice:1795710971", 1_795_710_971), ("12a:34", 34), ("@alice:example.org", 0), ("", 0),
            ("99999999999999999999999:@a:b", Int64.max),
        ] as [(String, Int64)]
    )
    func coturnExpiry(username: String, expiry: Int64) {
        #expect(RESTUsername.expiry(of: username) == expiry)
    }

    @Test(
        "User IDs coturn would answer 400 to are refused",
        arguments: ["", "@a b:c", "@a\tb:c", "@a\nb:c", "@a\"b:c", "@a'b:c", "@a\\b:c", "@a\u{7f}:c", "@a\rb:c"]
    )
    func badUsers(user: String) {
        #expect(throws: TurnkeeperError.self) { try RESTUsername.validate(user: user) }
    }

    @Test func goodUsers() throws {
        for user in ["@alice:example.org", "@_irc_bridge=x/y+z:server.tld", "@zoë:例え.jp"] {
            try RESTUsername.validate(user: user)
        }
    }

    @Test("Verification names the matching secret, tells expired from mismatched, and tries every secret")
    func verification() throws {
        let old = try TurnSecret.generate()
        let new = try TurnSecret.generate()
        let stranger = try TurnSecret.generate()
        let now: Int64 = 1_800_000_000
        let fresh = try CredentialMinter(secret: new).credential(user: "@alice:example.org", expiry: now + 3600)
        let stale = try CredentialMinter(secret: old).credential(user: "@alice:example.org", expiry: now - 1)
        let boundary = try CredentialMinter(secret: old).credential(user: "@alice:example.org", expiry: now)

        let both = try CredentialVerifier(secrets: [old, new])
        #expect(
            both.verify(username: fresh.username, password: fresh.password, nowSeconds: now)
                == .valid(fingerprint: new.fingerprint, expiry: now + 3600)
        )
        #expect(
            both.verify(username: stale.username, password: stale.password, nowSeconds: now)
                == .expired(fingerprint: old.fingerprint, expiry: now - 1)
        )
        // coturn refuses only when the timestamp is below now.
        #expect(
            both.verify(username: boundary.username, password: boundary.password, nowSeconds: now)
                == .valid(fingerprint: old.fingerprint, expiry: now)
        )

        let onlyStranger = try CredentialVerifier(secrets: [stranger])
        #expect(
            onlyStranger.verify(username: fresh.username, password: fresh.password, nowSeconds: now) == .noSecretMatched
        )

        var tampered = Array(fresh.password.utf8)
        tampered[0] = tampered[0] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        let tamperedPassword = String(decoding: tampered, as: UTF8.self)
        #expect(both.verify(username: fresh.username, password: tamperedPassword, nowSeconds: now) == .noSecretMatched)
        // A later expiry in the username breaks the signature.
        let extended = fresh.username.replacingOccurrences(of: "\(now + 3600)", with: "\(now + 7200)")
        #expect(both.verify(username: extended, password: fresh.password, nowSeconds: now) == .noSecretMatched)
        #expect(both.verify(username: fresh.username, password: "", nowSeconds: now) == .noSecretMatched)
    }

    @Test("Synapse's JSON shape: username, password, ttl as an integer, uris")
    func responseShape() throws {
        let minter = try CredentialMinter(secret: try TurnSecret(validating: "abc"))
        let credential = minter.credential(user: "@a:b", expiry: 1_795_710_971)
        let response = TurnServerResponse(
            credential: credential,
            lifetime: SynapseDuration(milliseconds: 3_600_000),
            uris: ["turn:turn.example.org?transport=udp"]
        )
        let object = try JSONSerialization.jsonObject(with: try JSONEncoder().encode(response)) as? [String: Any]
        #expect(Set(object?.keys ?? [:].keys) == ["username", "password", "ttl", "uris"])
        #expect(object?["ttl"] as? Int == 3600)
        #expect(object?["username"] as? String == "1795710971:@a:b")
        #expect(object?["uris"] as? [String] == ["turn:turn.example.org?transport=udp"])
    }
}
