import Foundation
import TestSupport
import Testing
import TurnkeeperCredentials

@Suite("turnkeeper credentials", .mayBlock, .tags(.live))
struct CredentialsCommandTests {
    let directory: TemporaryDirectory
    let secret = "q7XkP2mN9vR4tY8wZ1aB3cD5eF6gH0jK2lM4nO6pQ8rS0tU2"
    let secretPath: String

    init() throws {
        directory = try TemporaryDirectory()
        secretPath = try directory.write("secret", secret + "\n")
    }

    private func json(_ output: ProcessOutput) throws -> [String: Any] {
        try #require(JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any])
    }

    @Test("--json prints Synapse's shape, and the password is what Python's hmac computes")
    func mintJSON() throws {
        defer { directory.remove() }
        let before = Int64(Date().timeIntervalSince1970)
        let result = try TurnkeeperBinary.run([
            "credentials", "--user", "@alice:example.org", "--secret-file", secretPath, "--ttl", "30m", "--json",
            "--uri", "turn:turn.example.org?transport=udp", "--uri", "turns:turn.example.org:5349?transport=tcp",
        ])
        #expect(result.status == 0, "\(result)")
        let object = try json(result)
        #expect(Set(object.keys) == ["username", "password", "ttl", "uris"])
        #expect(object["ttl"] as? Int == 1800)
        #expect(
            object["uris"] as? [String] == [
                "turn:turn.example.org?transport=udp", "turns:turn.example.org:5349?transport=tcp",
            ])
        let username = try #require(object["username"] as? String)
        let password = try #require(object["password"] as? String)
        let expiry = try #require(Int64(username.split(separator: ":")[0]))
        #expect(expiry >= before + 1800 && expiry <= before + 1801 + 5)
        #expect(username.hasSuffix(":@alice:example.org"))

        // Recompute with Python from the same expiry: now_ms = expiry*1000 - lifetime gives the same username.
        let reference = try PythonReference.credentials([
            .init(
                secret: secret, user: "@alice:example.org", nowMilliseconds: expiry * 1000 - 1_800_000,
                lifetimeMilliseconds: 1_800_000)
        ])
        #expect(reference.first?.username == username)
        #expect(reference.first?.password == password)
        #expect(!result.stdout.contains(secret) && !result.stderr.contains(secret))
    }

    @Test("Without --json it prints the credential for people, and the default lifetime is Synapse's 1h")
    func mintHuman() throws {
        defer { directory.remove() }
        let result = try TurnkeeperBinary.run([
            "credentials", "mint", "--user", "@bob:example.org", "--secret-file", secretPath,
        ])
        #expect(result.status == 0)
        #expect(result.stdout.contains("ttl:      3600 seconds"))
        #expect(result.stdout.contains("username: "))
        #expect(!result.stdout.contains(secret))
    }

    @Test(
        "Bad input is a clear error, exit 2, and nothing on stdout",
        arguments: [
            ("", ["is empty or holds only whitespace"]),
            ("   \n", ["is empty or holds only whitespace"]),
            ("abc\"defghijk\n", ["line 1, column 4", "a double quote"]),
            ("abc defghijk\n", ["line 1, column 4", "a space"]),
        ]
    )
    func badSecretFiles(contents: String, expected: [String]) throws {
        defer { directory.remove() }
        let path = try directory.write("bad-secret", contents)
        let result = try TurnkeeperBinary.run(["credentials", "--user", "@a:b", "--secret-file", path])
        #expect(result.status == 2)
        #expect(result.stdout.isEmpty)
        #expect(result.stderr.contains(path))
        for text in expected { #expect(result.stderr.contains(text), "\(result.stderr)") }
        #expect(!result.stderr.contains("defghijk"), "the secret must not be echoed")
    }

    @Test(
        "Bad arguments are usage errors naming the option",
        arguments: [
            (["--user", "@a b:c"], "a space"), (["--user", "@a\nb:c"], "a line break"), (["--user", ""], "is empty"),
            (["--user", "@a:b", "--ttl", "1.5h"], "--ttl \"1.5h\""), (["--user", "@a:b", "--ttl", "0"], "--ttl"),
            (["--user", "@a:b", "--ttl", "500"], "under one second"),
            (["--user", "@a:b", "--ttl", "20y"], "after 2038-01-19"),
            // coturn takes usernames of at most 512 bytes: 10 digits of expiry, a colon, 501 of user ID.
            (["--user", "@" + String(repeating: "u", count: 498) + ":bc"], "is 502 bytes long"),
            (["--user", "@" + String(repeating: "é", count: 300) + ":b"], "at most 501 bytes"),
            (["--user", "@bobby:union.select.example"], "both \"union\" and \"select\""),
        ]
    )
    func badArguments(arguments: [String], expected: String) throws {
        defer { directory.remove() }
        let result = try TurnkeeperBinary.run(["credentials"] + arguments + ["--secret-file", secretPath])
        #expect(result.status == 2)
        #expect(result.stdout.isEmpty)
        #expect(result.stderr.contains(expected), "\(result.stderr)")
    }

    @Test("The longest user ID coturn takes (501 bytes) is minted: a 512-byte username")
    func longestUser() throws {
        defer { directory.remove() }
        let user = "@" + String(repeating: "u", count: 497) + ":bc"
        #expect(user.utf8.count == RESTUsername.maximumUserBytes)
        let result = try TurnkeeperBinary.run(["credentials", "--user", user, "--secret-file", secretPath, "--json"])
        #expect(result.status == 0, "\(result)")
        let username = try #require(try json(result)["username"] as? String)
        #expect(username.utf8.count == RESTUsername.maximumUsernameBytes)
    }

    @Test("Unreadable secret files: missing, a directory")
    func unreadable() throws {
        defer { directory.remove() }
        for path in [directory.file("absent"), directory.path] {
            let result = try TurnkeeperBinary.run(["credentials", "--user", "@a:b", "--secret-file", path])
            #expect(result.status == 2)
            #expect(result.stderr.contains("cannot read \(path)"))
        }
        let missing = try TurnkeeperBinary.run(["credentials", "--user", "@a:b"])
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("--secret-file"))
    }

    @Test("A world-readable secret file works, with a warning that says how to fix it")
    func worldReadable() throws {
        defer { directory.remove() }
        chmod(secretPath, 0o644)
        let result = try TurnkeeperBinary.run(["credentials", "--user", "@a:b", "--secret-file", secretPath])
        #expect(result.status == 0)
        #expect(result.stderr.contains("warning: \(secretPath) is readable by every user"))
        #expect(result.stderr.contains("chmod 600"))
    }

    @Test("verify: valid exits 0 and names the secret; expired and mismatched exit 1 and say why")
    func verify() throws {
        defer { directory.remove() }
        let other = try directory.write("other", "OtherSecret0123456789abcdefghijklmnopqrstuvwxyzAB\n")
        let minter = try CredentialMinter(secret: TurnSecret(validating: secret))
        let fingerprint = try TurnSecret(validating: secret).fingerprint
        let now = Int64(Date().timeIntervalSince1970)

        let fresh = minter.credential(user: "@alice:example.org", expiry: now + 600)
        let freshPassword = try directory.write("fresh", fresh.password + "\n")
        let valid = try TurnkeeperBinary.run([
            "credentials", "verify", "--username", fresh.username, "--password-file", freshPassword,
            "--secret-file", other, "--secret-file", secretPath,
        ])
        #expect(valid.status == 0, "\(valid)")
        #expect(valid.stdout.hasPrefix("valid: signed with secret \(fingerprint)"))

        let stale = minter.credential(user: "@alice:example.org", expiry: now - 120)
        let stalePassword = try directory.write("stale", stale.password)
        let expired = try TurnkeeperBinary.run([
            "credentials", "verify", "--username", stale.username, "--password-file", stalePassword, "--secret-file",
            secretPath,
        ])
        #expect(expired.status == 1)
        #expect(expired.stdout.hasPrefix("expired: signed with secret \(fingerprint)"))
        #expect(expired.stdout.contains("NTP"))

        let mismatch = try TurnkeeperBinary.run([
            "credentials", "verify", "--username", fresh.username, "--password-file", freshPassword, "--secret-file",
            other,
        ])
        #expect(mismatch.status == 1)
        #expect(mismatch.stdout.hasPrefix("no secret matched"))
        #expect(!mismatch.stdout.contains(fingerprint))

        let emptyPassword = try directory.write("empty", "")
        let empty = try TurnkeeperBinary.run([
            "credentials", "verify", "--username", fresh.username, "--password-file", emptyPassword, "--secret-file",
            secretPath,
        ])
        #expect(empty.status == 2)
        #expect(empty.stderr.contains(emptyPassword))
    }
}
