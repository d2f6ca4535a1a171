import Foundation
import TestSupport
import Testing

/// A real WebRTC stack (Debian's Chromium) relays through coturn with the credentials Synapse hands out.
@Suite("A real browser's WebRTC through coturn", .mayBlock, .tags(.live))
struct BrowserCallTests {
    @Test("After a rotation, Chromium, relay only, with Synapse's credentials: a data channel over UDP and TCP relays")
    func relaysWithSynapseCredentials() async throws {
        let deployment = try RotationTests.deploy(lifetime: "1h")
        defer { deployment.stop() }
        // turnkeeper adopts the admin's secret and rotates: Synapse now signs with a secret turnkeeper made.
        let rotation = try deployment.rotate()
        #expect(rotation.status == 0, "\(rotation)")
        let credential = try await deployment.synapseCredentials()
        for transport in ["udp", "tcp"] {
            let uri = "turn:127.0.0.1:\(deployment.coturn.port)?transport=\(transport)"
            let call = try HeadlessChromium.relayCall(
                uri: uri, username: credential.username, password: credential.password)
            #expect(call.open == "open" && call.echoed == "ping", "\(transport): \(call)")
            #expect(call.localType == "relay" && call.relayProtocol == transport, "\(transport): \(call)")
            #expect(call.errors.isEmpty, "\(transport): \(call)")
        }
    }

    @Test("With a password signed by another secret, Chromium gathers no relay and reports coturn's 401")
    func wrongSecret() async throws {
        let deployment = try RotationTests.deploy(lifetime: "1h")
        defer { deployment.stop() }
        #expect(try deployment.rotate().status == 0)
        let credential = try await deployment.synapseCredentials()
        let call = try HeadlessChromium.relayCall(
            uri: "turn:127.0.0.1:\(deployment.coturn.port)?transport=udp", username: credential.username,
            password: "AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
        // Both sides finish gathering with nothing to offer: an event, not the end of a wait.
        #expect(call.open == "no-relay" && call.localType == nil, "\(call)")
        #expect(call.errors.contains { $0.hasPrefix("401") }, "\(call)")
    }
}
