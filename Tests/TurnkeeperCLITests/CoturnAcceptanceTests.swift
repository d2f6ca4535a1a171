import Foundation
import TestSupport
import Testing
import TurnkeeperCredentials

/// turnkeeper's credentials against a real coturn, checked by coturn's own client.
@Suite("coturn accepts what turnkeeper mints", .mayBlock, .tags(.live))
struct CoturnAcceptanceTests {
    @Test("A credential from `turnkeeper credentials` allocates and relays; expired and foreign ones are refused")
    func acceptsAndRefuses() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let secretPath = directory.file("secret")
        #expect(try TurnkeeperBinary.run(["secret", "generate", "--out", secretPath]).status == 0)
        let secret = try directory.read("secret").trimmingCharacters(in: .newlines)

        let server = try CoturnServer(secrets: [secret])
        defer { server.stop() }
        let peer = try TurnPeer()
        defer { peer.stop() }

        let minted = try TurnkeeperBinary.run([
            "credentials", "--user", "@alice:turnkeeper.test", "--secret-file", secretPath, "--ttl", "10m", "--json",
        ])
        #expect(minted.status == 0)
        let object = try #require(JSONSerialization.jsonObject(with: Data(minted.stdout.utf8)) as? [String: Any])
        let username = try #require(object["username"] as? String)
        let password = try #require(object["password"] as? String)

        let accepted = try coturnClientAllocates(server: server, peer: peer, username: username, password: password)
        #expect(accepted.status == 0, "\(accepted)\n\(server.log.suffix(1500))")
        #expect(accepted.stdout.contains("Total lost packets 0"))

        let acceptedTCP = try coturnClientAllocates(
            server: server, peer: peer, username: username, password: password, tcp: true)
        #expect(acceptedTCP.status == 0, "\(acceptedTCP)")

        let minter = try CredentialMinter(secret: TurnSecret(validating: secret))
        let expired = minter.credential(user: "@alice:turnkeeper.test", expiry: Int64(Date().timeIntervalSince1970) - 5)
        let refusedExpired = try coturnClientAllocates(
            server: server, peer: peer, username: expired.username, password: expired.password)
        #expect(refusedExpired.status != 0)
        #expect(refusedExpired.stdout.contains("Cannot complete Allocation"), "\(refusedExpired)")

        let foreign = try CredentialMinter(secret: TurnSecret.generate())
            .credential(user: "@alice:turnkeeper.test", expiry: Int64(Date().timeIntervalSince1970) + 600)
        let refusedForeign = try coturnClientAllocates(
            server: server, peer: peer, username: foreign.username, password: foreign.password)
        #expect(refusedForeign.status != 0)
        #expect(refusedForeign.stdout.contains("Cannot complete Allocation"), "\(refusedForeign)")
    }

    @Test("With two static-auth-secret lines coturn accepts credentials from either: the overlap rotation relies on")
    func overlap() throws {
        let old = try TurnSecret.generate()
        let new = try TurnSecret.generate()
        let text = { (secret: TurnSecret) in secret.withExposedBytes { String(decoding: $0, as: UTF8.self) } }
        let server = try CoturnServer(secrets: [text(old), text(new)])
        defer { server.stop() }
        let peer = try TurnPeer()
        defer { peer.stop() }
        let expiry = Int64(Date().timeIntervalSince1970) + 600
        for secret in [old, new] {
            let credential = try CredentialMinter(secret: secret).credential(
                user: "@bob:turnkeeper.test", expiry: expiry)
            let result = try coturnClientAllocates(
                server: server, peer: peer, username: credential.username, password: credential.password)
            #expect(result.status == 0, "secret \(secret.fingerprint): \(result)")
        }
    }
}
