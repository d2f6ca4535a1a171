import Foundation
import Glibc
import TestSupport
import Testing
import TurnkeeperCredentials
import TurnkeeperSynapse

/// Synapse's secret in a file of its own (turn_shared_secret_path), as Synapse's Debian package can keep it.
@Suite("turnkeeper rotate in path mode", .mayBlock, .tags(.live))
struct PathModeTests {
    @Test(
        "The new secret goes into the secret file (0640, Synapse's group), which Synapse's config names; coturn accepts it"
    )
    func rotate() async throws {
        var options = TurnkeeperDeployment.Options()
        options.mode = .path
        let deployment = try TurnkeeperDeployment(options)
        defer { deployment.stop() }
        #expect(permissions(of: deployment.secretFile) == 0o640)

        let rotated = try deployment.run(["rotate"])
        #expect(rotated.status == 0, "\(rotated)")
        #expect(rotated.stdout.contains("adopted Synapse's current secret (\(deployment.original.fingerprint))"))
        let current = try deployment.currentSecret()
        #expect(current != deployment.original)
        let synapse = try SynapseConfig.load([deployment.homeserverYAML, deployment.confD])
        #expect(synapse.turnSecret == current)
        #expect(try SecretFile.read(deployment.secretFile).secret == current)
        #expect(permissions(of: deployment.secretFile) == 0o640)
        #expect(ownership(of: deployment.secretFile).gid == getgrnam("nogroup").pointee.gr_gid)
        #expect(try await deployment.accepts(current))
        #expect(try await deployment.accepts(deployment.original), "retired before its credentials expired")
        let text = current.withExposedBytes { String(decoding: $0, as: UTF8.self) }
        #expect(!rotated.stdout.contains(text) && !rotated.stderr.contains(text))
    }
}
