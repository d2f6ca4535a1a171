import Testing
import TurnkeeperProbe

@Suite("TURN URIs")
struct TURNURITests {
    @Test(
        "RFC 7064/7065 forms, default ports and transports",
        arguments: [
            ("stun:turn.example.org", "turn.example.org", 3478, "udp"),
            ("turn:turn.example.org", "turn.example.org", 3478, "udp"),
            ("turn:turn.example.org:3479?transport=tcp", "turn.example.org", 3479, "tcp"),
            ("turns:turn.example.org", "turn.example.org", 5349, "tls"),
            ("turns:turn.example.org:443?transport=tcp", "turn.example.org", 443, "tls"),
            ("turn:[2001:db8::1]:3478?transport=udp", "2001:db8::1", 3478, "udp"),
            ("TURN:198.51.100.7", "198.51.100.7", 3478, "udp"),
        ]
    )
    func parses(text: String, host: String, port: Int, transport: String) throws {
        let uri = try TURNURI(text)
        #expect(uri.host == host)
        #expect(uri.port == port)
        #expect(uri.transport.rawValue == transport)
    }

    @Test(
        "Malformed URIs are refused with the forms that work",
        arguments: [
            "http://turn.example.org", "turn:", "turn://turn.example.org", "turn:host:0", "turn:host:65536",
            "turn:host?transport=sctp", "turns:host?transport=udp", "stun:host?transport=tcp", "turn:[::1",
            "turn:ho st",
        ]
    )
    func refuses(text: String) {
        #expect {
            try TURNURI(text)
        } throws: { error in
            "\(error)".contains("turn:HOST[:PORT]")
        }
    }
}

@Suite("Diagnosis rules")
struct DiagnosticianTests {
    private func target(_ transport: String, _ steps: [StepReport], address: String = "203.0.113.7:3478")
        -> TargetReport
    {
        let uri = transport == "tls" ? "turns:turn.example.org" : "turn:turn.example.org?transport=\(transport)"
        return TargetReport(uri: uri, transport: transport, address: address, steps: steps)
    }

    private func step(
        _ name: StepReport.Name, _ status: StepReport.Status, failure: String? = nil, facts: [String: String] = [:]
    )
        -> StepReport
    {
        StepReport(step: name, status: status, milliseconds: 1, detail: "", facts: facts, failure: failure)
    }

    private let now: Int64 = 1_800_000_000

    @Test("A private relayed address behind a public server address asks for external-ip=PUBLIC/PRIVATE")
    func externalIP() {
        let allocation = step(
            .allocation,
            .pass,
            facts: ["relayed": "10.0.0.5:49160", "relayedPrivate": "true", "serverPrivate": "false"]
        )
        let diagnoses = Diagnostician(context: .init(nowSeconds: now)).diagnose([target("udp", [allocation])])
        #expect(diagnoses.map(\.code) == ["external-ip-missing"])
        #expect(diagnoses.first?.fix.contains("external-ip=203.0.113.7/10.0.0.5") == true)

        // A server reached at a private address (a LAN probe) hands out private relays legitimately.
        let lan = step(
            .allocation, .pass, facts: ["relayed": "10.0.0.5:49160", "relayedPrivate": "true", "serverPrivate": "true"])
        #expect(
            Diagnostician(context: .init(nowSeconds: now)).diagnose([target("udp", [lan], address: "10.0.0.5:3478")])
                .isEmpty)
    }

    @Test("Rejected credentials: a mismatch, or expired, or past 2038, decided by the credential's expiry")
    func credentials() {
        let rejected = [
            target("udp", [step(.binding, .pass), step(.allocation, .fail, failure: "credentials-rejected")])
        ]
        let codes = { (expiry: Int64?) in
            Diagnostician(context: .init(credentialExpiry: expiry, nowSeconds: self.now)).diagnose(rejected).map(\.code)
        }
        #expect(codes(now + 600) == ["credentials-rejected"])
        #expect(codes(nil) == ["credentials-rejected"])
        #expect(codes(now - 1) == ["credentials-expired"])
        #expect(codes(2_147_483_648) == ["credentials-expiry-too-late"])
        // pion answers 400, not 401, to credentials it refuses.
        let pion = [target("udp", [step(.binding, .pass), step(.allocation, .fail, failure: "error-400")])]
        #expect(Diagnostician(context: .init(nowSeconds: now)).diagnose(pion).map(\.code) == ["credentials-rejected"])
    }

    @Test("A timeout is a blocked transport only when another transport answers; one diagnosis lists every target")
    func blockedOrDown() {
        let udpTimeout = target("udp", [step(.binding, .fail, failure: "timeout")])
        let tcpWorks = target("tcp", [step(.binding, .pass)])
        let blocked = Diagnostician(context: .init(nowSeconds: now)).diagnose([udpTimeout, tcpWorks])
        #expect(blocked.map(\.code) == ["udp-blocked"])
        let down = Diagnostician(context: .init(nowSeconds: now)).diagnose([udpTimeout, udpTimeout])
        #expect(down.map(\.code) == ["unreachable"])
        #expect(down.first?.targets.count == 1)
    }

    @Test("Certificates: expired beats a name mismatch; a valid, matching one is untrusted; wildcards match one label")
    func certificates() {
        let failed = target("tls", [step(.binding, .fail, failure: "tls")])
        func code(_ names: [String], notValidAfter: Int64) -> String? {
            let facts = Diagnostician.CertificateFacts(
                names: names, notValidAfter: notValidAfter, notValidAfterText: "then")
            let context = Diagnostician.Context(nowSeconds: now, certificates: [failed.address: facts])
            return Diagnostician(context: context).diagnose([failed]).first?.code
        }
        #expect(code(["turn.example.org"], notValidAfter: now - 1) == "tls-expired")
        #expect(code(["other.example.org"], notValidAfter: now + 1) == "tls-name-mismatch")
        #expect(code(["turn.example.org"], notValidAfter: now + 1) == "tls-untrusted")
        #expect(code(["*.example.org"], notValidAfter: now + 1) == "tls-untrusted")
        #expect(code(["*.org"], notValidAfter: now + 1) == "tls-name-mismatch")
        #expect(Diagnostician(context: .init(nowSeconds: now)).diagnose([failed]).first?.code == "tls-failed")
    }

    @Test("Relays: silence means the relay ports are blocked; 403 is denied-peer-ip; 486 and 508 are quotas")
    func relayAndErrors() {
        let codes = { (failure: String, stepName: StepReport.Name) in
            Diagnostician(context: .init(nowSeconds: self.now)).diagnose([
                self.target("udp", [self.step(stepName, .fail, failure: failure)])
            ])
            .map(\.code)
        }
        #expect(codes("relay-silent", .relayChannelData) == ["relay-ports-blocked"])
        #expect(codes("error-403", .permission) == ["peer-denied"])
        #expect(codes("error-486", .allocation) == ["allocation-quota"])
        #expect(codes("error-508", .allocation) == ["relay-capacity"])
        #expect(codes("refused", .binding) == ["not-listening"])
        #expect(codes("protocol-violation", .binding) == ["broken-server"])
    }
}
