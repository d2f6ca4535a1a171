import Foundation
import TestSupport
import Testing

@Suite("turnkeeper secret", .mayBlock, .tags(.live))
struct SecretCommandTests {
    let directory: TemporaryDirectory
    init() throws { directory = try TemporaryDirectory() }

    @Test("generate prints one line of 48 characters from [A-Za-z0-9]")
    func generateToStdout() throws {
        let result = try TurnkeeperBinary.run(["secret", "generate"])
        #expect(result.status == 0)
        let line = result.stdout.trimmingCharacters(in: .newlines)
        #expect(line.count == 48)
        #expect(line.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber) })
        #expect(result.stdout.filter { $0 == "\n" }.count == 1)
    }

    @Test("generate --out writes a 0600 file, prints its fingerprint only, and refuses to overwrite")
    func generateToFile() throws {
        defer { directory.remove() }
        let path = directory.file("secret")
        let first = try TurnkeeperBinary.run(["secret", "generate", "--out", path])
        #expect(first.status == 0, "\(first)")
        #expect(permissions(of: path) == 0o600)
        let secret = try directory.read("secret").trimmingCharacters(in: .newlines)
        #expect(secret.count == 48)
        #expect(!first.stdout.contains(secret))
        #expect(!first.stderr.contains(secret))

        let fingerprint = try TurnkeeperBinary.run(["secret", "fingerprint", "--secret-file", path])
        #expect(fingerprint.status == 0)
        let shown = String(fingerprint.stdout.prefix(8))
        #expect(first.stdout.contains("fingerprint \(shown)"))

        let again = try TurnkeeperBinary.run(["secret", "generate", "--out", path])
        #expect(again.status == 2)
        #expect(again.stderr.contains("\(path) already exists"))
        #expect(again.stderr.contains("--force"))
        #expect(try directory.read("secret").trimmingCharacters(in: .newlines) == secret)

        let forced = try TurnkeeperBinary.run(["secret", "generate", "--out", path, "--force"])
        #expect(forced.status == 0)
        let replaced = try directory.read("secret").trimmingCharacters(in: .newlines)
        #expect(replaced != secret)
        #expect(replaced.count == 48)
        #expect(permissions(of: path) == 0o600)
    }

    @Test("--force without --out and unknown arguments are usage errors (exit 2)")
    func usage() throws {
        defer { directory.remove() }
        let force = try TurnkeeperBinary.run(["secret", "generate", "--force"])
        #expect(force.status == 2)
        #expect(force.stderr.contains("--force only applies with --out"))
        #expect(try TurnkeeperBinary.run(["secret", "frobnicate"]).status == 2)
        #expect(
            try TurnkeeperBinary.run(["secret", "generate", "--out", directory.file("missing/secret")]).status == 2)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)
    }

    @Test("--help teaches and exits 0")
    func help() throws {
        let result = try TurnkeeperBinary.run(["secret", "generate", "--help"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("RAND_bytes"))
        #expect(result.stdout.contains("--out"))
        let root = try TurnkeeperBinary.run(["--help"])
        #expect(root.status == 0)
        #expect(root.stdout.contains("Exit status: 0 ok, 1 a check failed, 2 usage or configuration error."))
    }
}
