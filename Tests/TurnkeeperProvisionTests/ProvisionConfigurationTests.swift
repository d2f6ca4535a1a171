import Foundation
import TestSupport
import Testing
import TurnkeeperConfiguration
import TurnkeeperCredentials

@testable import TurnkeeperProvision

/// The bundle's two turnkeeper.yaml files are rendered from typed configurations: each reads back to exactly the
/// configuration the other host's files assume.
@Suite("provision: turnkeeper.yaml for both hosts", .mayBlock)
struct ProvisionConfigurationTests {
    @Test("Both hosts' turnkeeper.yaml read back to the typed configuration they were rendered from")
    func readsBack() throws {
        let options = ProvisionOptions(
            domain: "turn.example.com", publicAddresses: ["198.51.100.7"], certificate: "/etc/ssl/turn.pem",
            key: "/etc/ssl/turn.key", homeserver: "https://matrix.example.com", epoch: "12h")
        let files = Provisioner(options: options, date: "today").render(rootKey: try TurnSecret.generate())
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        func load(_ name: String) throws -> Configuration {
            let text = try #require(files.first { $0.path == name }).text
                // This machine has no matrix-synapse group, and a group that does not exist is refused.
                .replacingOccurrences(of: "group: matrix-synapse", with: "group: nogroup")
            return try Configuration.load(try directory.write(name.replacingOccurrences(of: "/", with: "-"), text))
        }
        let derivation = Configuration.Derivation(rootKeyFile: "/etc/turnkeeper/root-key", epoch: .hours(12))
        let turn = try load("turn-host/turnkeeper.yaml")
        #expect(turn.role == .turnHost(derivation))
        #expect(turn.coturn == .init(realm: "turn.example.com", verifyURI: "turn:198.51.100.7?transport=udp"))
        #expect(turn.daemon.probeURIs == Provisioner(options: options, date: "").turnURIs)
        #expect(turn.rotation.stateDirectory == "/var/lib/turnkeeper")
        let synapse = try load("synapse-host/turnkeeper.yaml")
        #expect(synapse.role == .synapseHost(derivation))
        #expect(synapse.coturn.verifyURI == "turn:turn.example.com?transport=udp")
        #expect(synapse.synapse == .init(group: "nogroup", healthURL: "https://matrix.example.com/health"))
        // The realm both hosts derive under is the same.
        #expect(turn.coturn.realm == synapse.coturn.realm)
    }
}
