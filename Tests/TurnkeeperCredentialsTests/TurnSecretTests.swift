import Glibc
import TestSupport
import Testing
import TurnkeeperCore
import TurnkeeperCredentials

@Suite("Shared secrets", .mayBlock)
struct TurnSecretTests {
    static let alphabet = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")

    @Test("Generated secrets carry at least 256 bits from [A-Za-z0-9], and every letter of it turns up")
    func generated() throws {
        var seen = Set<Character>()
        var values = Set<String>()
        for _ in 0..<200 {
            let secret = try TurnSecret.generate()
            let text = secret.withExposedBytes { String(decoding: $0, as: UTF8.self) }
            #expect(text.count == TurnSecret.generatedLength)
            #expect(text.allSatisfy(Self.alphabet.contains))
            #expect(secret.estimatedBits >= 256)
            seen.formUnion(text)
            values.insert(text)
        }
        #expect(values.count == 200)
        // 9,600 draws over 62 letters: a letter never drawn would mean a biased mapping.
        #expect(seen == Self.alphabet)
    }

    @Test("Description, debug description, dump and interpolation show the fingerprint, never the value")
    func neverPrinted() throws {
        let secret = try TurnSecret(validating: "SuperSecretValue0123456789abcdefghijklmnopqrstu")
        var dumped = ""
        dump(secret, to: &dumped)
        let renderings = [secret.description, secret.debugDescription, "\(secret)", String(reflecting: secret), dumped]
        for text in renderings {
            #expect(!text.contains("SuperSecret"), "leaked: \(text)")
            #expect(text.contains(secret.fingerprint))
        }
        #expect(secret.fingerprint.count == 8)
    }

    @Test("The fingerprint is the first 8 hex digits of SHA-256")
    func fingerprint() throws {
        // printf abc | sha256sum → ba7816bf...
        #expect(try TurnSecret(validating: "abc").fingerprint == "ba7816bf")
    }

    @Test func equality() throws {
        #expect(try TurnSecret(validating: "abc123") == TurnSecret(validating: "abc123"))
        #expect(try TurnSecret(validating: "abc123") != TurnSecret(validating: "abc124"))
        #expect(try TurnSecret(validating: "abc123") != TurnSecret(validating: "abc1234"))
    }

    @Test(
        "Values outside [A-Za-z0-9] are refused with the position and kind, not the value",
        arguments: [
            ("", "empty"), ("   ", "empty"), ("abc def", "a space"), ("abc\"def", "a double quote"),
            ("abc'def", "a single quote"), ("abc\\def", "a backslash"), ("abcé", "a non-ASCII character"),
            ("abc\tdef", "a tab"), ("abc#def", "punctuation"),
        ]
    )
    func refused(value: String, kind: String) {
        #expect {
            try TurnSecret(validating: value, source: "the test value")
        } throws: { error in
            guard let error = error as? TurnkeeperError else { return false }
            return error.code == .invalidSecret && error.reason.contains("the test value")
                && error.reason.contains(kind) && (value.isEmpty || !error.reason.contains(value))
        }
    }
}

@Suite("Secret files", .mayBlock)
struct SecretFileTests {
    let directory: TemporaryDirectory
    init() throws { directory = try TemporaryDirectory() }

    @Test("One trailing newline, LF or CRLF, is stripped")
    func trailingNewline() throws {
        defer { directory.remove() }
        for contents in ["abcDEF123\n", "abcDEF123\r\n", "abcDEF123"] {
            let path = try directory.write("secret", contents)
            let loaded = try SecretFile.read(path)
            #expect(loaded.secret == (try TurnSecret(validating: "abcDEF123")))
        }
    }

    @Test(
        "Malformed files are refused, naming the file and line",
        arguments: [
            ("", "is empty"), ("\n", "is empty"), ("  \t\n", "is empty"), ("abc def\n", "line 1, column 4"),
            ("abc\"def\n", "a double quote"), ("abc\n\n", "line 2"), ("abc\ndef\n", "line 2"),
        ]
    )
    func malformed(contents: String, expected: String) throws {
        defer { directory.remove() }
        let path = try directory.write("secret", contents)
        #expect {
            try SecretFile.read(path)
        } throws: { error in
            guard let error = error as? TurnkeeperError else { return false }
            return error.code == .invalidSecret && error.reason.contains(path) && error.reason.contains(expected)
        }
    }

    @Test("Missing files and directories are refused with the path and what to do")
    func unreadable() throws {
        defer { directory.remove() }
        for path in [directory.file("absent"), directory.path] {
            #expect {
                try SecretFile.read(path)
            } throws: { error in
                guard let error = error as? TurnkeeperError else { return false }
                return error.code == .unreadableFile && error.reason.contains(path)
            }
        }
    }

    @Test("World-readable and short secrets load with warnings")
    func warnings() throws {
        defer { directory.remove() }
        let strong = String(repeating: "a", count: 48)
        let privateFile = try directory.write("private", strong + "\n", mode: 0o600)
        #expect(try SecretFile.read(privateFile).warnings.isEmpty)
        let groupFile = try directory.write("group", strong + "\n", mode: 0o640)
        #expect(try SecretFile.read(groupFile).warnings.isEmpty)

        let open = try directory.write("open", strong + "\n", mode: 0o644)
        let openWarnings = try SecretFile.read(open).warnings
        #expect(openWarnings.count == 1)
        #expect(openWarnings.first?.contains("chmod 600 \(open)") == true)

        let short = try directory.write("short", "abc\n", mode: 0o600)
        let shortWarnings = try SecretFile.read(short).warnings
        #expect(shortWarnings.count == 1)
        #expect(shortWarnings.first?.contains("under 256 bits") == true)
    }

    @Test("Writing creates a 0600 file, refuses to overwrite, and a forced write keeps owner and narrows the mode")
    func writing() throws {
        defer { directory.remove() }
        let path = directory.file("new-secret")
        let first = try TurnSecret.generate()
        try SecretFile.write(first, to: path, overwrite: false)
        #expect(permissions(of: path) == 0o600)
        #expect(try SecretFile.read(path).secret == first)

        let second = try TurnSecret.generate()
        #expect(throws: TurnkeeperError.self) { try SecretFile.write(second, to: path, overwrite: false) }
        #expect(try SecretFile.read(path).secret == first)

        chmod(path, 0o644)
        chown(path, 0, 65534)
        try SecretFile.write(second, to: path, overwrite: true)
        #expect(try SecretFile.read(path).secret == second)
        #expect(permissions(of: path) == 0o640)
        #expect(ownership(of: path) == (0, 65534))
        // A file another user owns would hand them the secret: refused, untouched.
        chown(path, 65534, 65534)
        #expect(throws: TurnkeeperError.self) { try SecretFile.write(first, to: path, overwrite: true) }
        #expect(try SecretFile.read(path).secret == second)
    }
}

private func == (lhs: (uid_t, gid_t), rhs: (uid_t, gid_t)) -> Bool { lhs.0 == rhs.0 && lhs.1 == rhs.1 }
