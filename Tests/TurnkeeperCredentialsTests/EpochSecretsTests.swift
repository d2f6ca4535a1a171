import Foundation
import TestSupport
import Testing
import TurnkeeperCredentials

@Suite("Epoch secrets", .mayBlock)
struct EpochSecretsTests {
    @Test("Derived secrets match an independent derivation with Python's cryptography HKDF")
    func pythonReference() throws {
        let root = try TurnSecret.generate()
        let rootText = root.withExposedBytes { String(decoding: $0, as: UTF8.self) }
        let epochs = EpochSecrets(rootKey: root, realm: "turn.example.com", length: 86_400)
        let script = """
            import sys
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.kdf.hkdf import HKDF
            root, realm = sys.stdin.read().split()
            alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
            for epoch in (-1, 0, 1, 20418, 20419):
                okm = HKDF(hashes.SHA256(), 96, b"turnkeeper epoch secret v1",
                           realm.encode() + b"\\0" + str(epoch).encode()).derive(root.encode())
                print(bytes(alphabet[b % 62] for b in okm if b < 248)[:48].decode())
            """
        let python = try ProcessRunner.which("python3", package: "python3 (with the cryptography module)")
        let output = try ProcessRunner.run(python, ["-c", script], stdin: rootText + " turn.example.com")
        #expect(output.status == 0, "\(output)")
        let expected = output.stdout.split(separator: "\n").map(String.init)
        let derived = try [-1, 0, 1, 20418, 20419].map { epoch in
            try epochs.secret(for: Int64(epoch)).withExposedBytes { String(decoding: $0, as: UTF8.self) }
        }
        #expect(derived == expected)
    }

    @Test("Each epoch, realm and key gives its own secret of 48 characters from [A-Za-z0-9]; the same inputs, the same")
    func distinct() throws {
        let root = try TurnSecret.generate()
        let a = EpochSecrets(rootKey: root, realm: "a.example", length: 60)
        let b = EpochSecrets(rootKey: root, realm: "b.example", length: 60)
        let other = EpochSecrets(rootKey: try TurnSecret.generate(), realm: "a.example", length: 60)
        var seen = Set<String>()
        for epoch in Int64(0)..<50 {
            for source in [a, b, other] {
                let text = try source.secret(for: epoch).withExposedBytes { String(decoding: $0, as: UTF8.self) }
                #expect(text.count == 48 && text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber) })
                #expect(seen.insert(text).inserted)
            }
        }
        #expect(
            try a.secret(for: 7) == (try EpochSecrets(rootKey: root, realm: "a.example", length: 60).secret(for: 7)))
    }

    @Test("Epochs: [e × length, (e + 1) × length), also before 1970")
    func epochs() throws {
        let epochs = EpochSecrets(rootKey: try TurnSecret.generate(), realm: "r", length: 10)
        #expect(epochs.epoch(at: 0) == 0 && epochs.epoch(at: 9) == 0 && epochs.epoch(at: 10) == 1)
        #expect(epochs.epoch(at: -1) == -1 && epochs.epoch(at: -10) == -1 && epochs.epoch(at: -11) == -2)
        #expect(epochs.start(of: 3) == 30)
    }
}
