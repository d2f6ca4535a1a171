import Foundation
import Glibc
import TestSupport
import Testing
import TurnkeeperConfiguration
import TurnkeeperCredentials

/// A prosody consumer when Prosody does not take the new secret: each way stops the rotation at Prosody with
/// its cause, while coturn keeps accepting what Prosody hands out.
@Suite("A Prosody that does not take the new secret", .mayBlock, .tags(.live))
struct ProsodyConsumerTests {
    struct Lab {
        var base: TurnkeeperDeployment
        let prosody: ProsodyServer

        func stop() {
            prosody.stop()
            base.stop()
        }

        /// The secret Prosody's TURN credentials are signed with now, asked as an XMPP client asks; each one
        /// must allocate on coturn.
        func prosodySigns(with secret: TurnSecret) async throws -> Bool {
            let services = try XMPPClient.turnServices(prosody)
            guard !services.isEmpty else { throw TestFailure("Prosody hands out no TURN service") }
            let verifier = try CredentialVerifier(secrets: [secret])
            var all = true
            for service in services {
                let user = service.username ?? ""
                let password = service.password ?? ""
                #expect(try await TURNAllocation.succeeds(port: base.coturn.port, username: user, password: password))
                if case .valid = verifier.verify(
                    username: user, password: password, nowSeconds: Int64(Date().timeIntervalSince1970))
                {
                } else {
                    all = false
                }
            }
            return all
        }
    }

    static func lab(hostLines: (String) -> [String] = { _ in [] }) throws -> Lab {
        var base = try TurnkeeperDeployment()
        let original = base.original.withExposedBytes { String(decoding: $0, as: UTF8.self) }
        let prosody = try ProsodyServer(
            turnPort: base.coturn.port, globalLines: ["turn_external_secret = \"\(original)\""],
            hostLines: hostLines(original))
        base.settings.consumers = [
            .init(
                name: "xmpp",
                kind: .prosody(
                    .init(
                        configFile: prosody.managedFile, prosodyctl: prosody.prosodyctl, hosts: [prosody.host],
                        turnHost: "127.0.0.1", turnPort: Int(base.coturn.port), credentialLifetime: .minutes(30))))
        ]
        try base.writeConfig()
        return Lab(base: base, prosody: prosody)
    }

    @Test("A turn_external_secret under the VirtualHost shadows turnkeeper's: stopped with the cause; removed, resumed")
    func shadowedByVirtualHost() async throws {
        let lab = try Self.lab(hostLines: { ["turn_external_secret = \"\($0)\""] })
        defer { lab.stop() }
        let original = lab.base.original
        let rotated = try lab.base.run(["rotate"])
        #expect(rotated.status == 1, "\(rotated)")
        #expect(rotated.stderr.contains("VirtualHost"), "\(rotated)")
        #expect(try lab.base.status()["phase"] as? String == "switching")
        // Prosody still hands out the old secret's credentials, and coturn still accepts them.
        #expect(try await lab.prosodySigns(with: original))
        let check = try lab.base.run(["check"])
        #expect(check.stdout.contains("prosody consumer xmpp signs with \(original.fingerprint), which coturn accepts"))
        #expect(check.stdout.contains("stopped in phase switching with xmpp not switched yet"), "\(check)")
        #expect(check.status == 1)

        try lab.prosody.setHostLines([])
        let resumed = try lab.base.run(["rotate", "--resume"])
        #expect(resumed.status == 0, "\(resumed)")
        let current = try lab.base.currentSecret()
        #expect(current != original)
        #expect(try await lab.prosodySigns(with: current))
    }

    @Test("Prosody not running: bringing it onto the adopted secret fails, its file is taken back, nothing starts")
    func prosodyDown() async throws {
        let lab = try Self.lab()
        defer { lab.stop() }
        lab.prosody.stopProcess()
        let rotated = try lab.base.run(["rotate"])
        #expect(rotated.status == 1, "\(rotated)")
        #expect(rotated.stderr.contains("did not reload its config"), "\(rotated)")
        #expect(rotated.stderr.contains("was put back"), "\(rotated)")
        // It had no file before this rotation, so none is left.
        #expect(access(lab.prosody.managedFile, F_OK) != 0)
        #expect(try await lab.base.accepts(lab.base.original))
        // Before step 1: no rotation began, and Synapse keeps its secret.
        let status = try lab.base.status()
        #expect(status["phase"] as? String == "idle" && status["pending"] == nil, "\(status)")
        #expect(status["current"] as? String == lab.base.original.fingerprint)
    }
}
