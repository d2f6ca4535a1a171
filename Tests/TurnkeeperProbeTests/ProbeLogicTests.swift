import Foundation
import TestSupport
import Testing
import TurnkeeperProbe
import TurnkeeperTURNClient

@Suite("TURN URIs", .mayBlock)
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
            "turn:ho st", "turn:[example.org]:3478", "turn:[127.0.0.1]", "turn:host:+80", "turn:host:",
            "turn:a..b", "turn:.a", "turn:tür.example", "turn:١٢٣",
        ]
    )
    func refuses(text: String) {
        #expect {
            try TURNURI(text)
        } throws: { error in
            "\(error)".contains("turn:HOST[:PORT]")
        }
    }

    @Test(
        "An IPv6 address without brackets is refused, with the bracketed form to write",
        arguments: ["turn:::1", "turn:::1:3478", "stun:2001:db8::1", "turns:fe80::1:5349?transport=tcp"]
    )
    func unbracketedIPv6(text: String) {
        let scheme = text.prefix { $0 != ":" }
        #expect {
            try TURNURI(text)
        } throws: { error in
            "\(error)".contains("in brackets") && "\(error)".contains("\(scheme):[::1]:3478")
        }
    }

    @Test("Host names: 253 characters and labels of 63 pass; one more is refused, naming the limit")
    func hostNameLimits() throws {
        let label63 = String(repeating: "a", count: 63)
        // 63 + 1 + 63 + 1 + 63 + 1 + 61 = 253 characters, and a trailing dot is allowed.
        let longest = [label63, label63, label63, String(repeating: "b", count: 61)].joined(separator: ".")
        #expect(longest.count == 253)
        #expect(try TURNURI("turn:\(longest):3478").host == longest)
        #expect(try TURNURI("turn:\(longest).").port == 3478)
        #expect {
            try TURNURI("turn:\(longest)b:3478")
        } throws: { error in
            "\(error)".contains("254 characters long; DNS allows at most 253")
        }
        #expect {
            try TURNURI("turn:\(label63)a.example.org")
        } throws: { error in
            "\(error)".contains("64 characters long; DNS allows at most 63")
        }
    }

    @Test("The URI in an error is escaped and bounded, whatever the text")
    func errorEscapes() {
        let text = "turn:\u{1B}[2J\nPASS" + String(repeating: "x", count: 500)
        #expect {
            try TURNURI(text)
        } throws: { error in
            let description = "\(error)"
            return !description.contains("\u{1B}") && !description.contains("\n") && description.contains("\\x1b[2J")
                && description.count < 400
        }
    }
}

@Suite("Diagnosis rules", .mayBlock)
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
        StepReport(
            step: name, status: status, milliseconds: 1, detail: "", facts: facts,
            failure: failure.map(FailureCode.init(rawValue:)))
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
        #expect(diagnoses.map(\.code.rawValue) == ["external-ip-missing"])
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
            Diagnostician(context: .init(credentialExpiry: expiry, nowSeconds: self.now)).diagnose(rejected).map(
                \.code.rawValue)
        }
        #expect(codes(now + 600) == ["credentials-rejected"])
        #expect(codes(nil) == ["credentials-rejected"])
        #expect(codes(now - 1) == ["credentials-expired"])
        #expect(codes(2_147_483_648) == ["credentials-expiry-too-late"])
    }

    @Test("Rejected credentials while coturn's user database is down blame the database, not the secret")
    func rejectedWhileStoreDown() {
        let rejected = [
            target("udp", [step(.binding, .pass), step(.allocation, .fail, failure: "credentials-rejected")])
        ]
        let diagnoses = Diagnostician(
            context: .init(credentialExpiry: now + 600, nowSeconds: now, storeProblem: "cannot reach Redis")
        ).diagnose(rejected)
        #expect(diagnoses.map(\.code.rawValue) == ["credentials-rejected-store-down"])
        #expect(diagnoses.first?.summary.contains("cannot reach Redis") == true)
        #expect(diagnoses.first?.fix.contains("turn_shared_secret") == false)
    }

    @Test("The same refusal gets the same code: pion's unsigned 400 to the Allocate is credentials-rejected, as 401 is")
    func sameFailureSameCode() {
        let diagnostician = Diagnostician(context: .init(nowSeconds: now))
        func allocation(_ failure: String, _ errorCode: String, answer: String) -> [TargetReport] {
            [
                target(
                    "udp",
                    [
                        step(.binding, .pass),
                        step(
                            .allocation, .fail, failure: failure,
                            facts: ["errorCode": errorCode, "answerIntegrity": answer]),
                    ])
            ]
        }
        let coturn = diagnostician.classify(allocation("credentials-rejected", "401", answer: "missing"))
        let pion = diagnostician.classify(allocation("error-400", "400", answer: "missing"))
        for targets in [coturn, pion] {
            #expect(targets[0].steps[1].failure == .credentialsRejected)
            #expect(diagnostician.diagnose(targets).map(\.code.rawValue) == ["credentials-rejected"])
        }
        // The number stays in the evidence; the two servers' refusals are one diagnosis.
        #expect(pion[0].steps[1].facts["errorCode"] == "400")
        #expect(diagnostician.diagnose(coturn) == diagnostician.diagnose(pion))
        let both = diagnostician.diagnose(coturn + [target("tcp", pion[0].steps, address: "203.0.113.8:3478")])
        #expect(both.map(\.code.rawValue) == ["credentials-rejected"])
        #expect(both.first?.targets.count == 2)
        // A signed 400 means the server verified the credentials and refused something else.
        let signed = diagnostician.classify(allocation("error-400", "400", answer: "valid"))
        #expect(signed[0].steps[1].failure == .errorResponse(400))
        #expect(diagnostician.diagnose(signed).isEmpty)
        // So does a 400 to a request that carried no credentials, and a 400 past the allocation.
        let binding = [target("udp", [step(.binding, .fail, failure: "error-400", facts: ["errorCode": "400"])])]
        #expect(diagnostician.classify(binding)[0].steps[0].failure == .errorResponse(400))
        let permission = [
            target(
                "udp",
                [
                    step(.allocation, .pass),
                    step(
                        .permission, .fail, failure: "error-400",
                        facts: ["errorCode": "400", "answerIntegrity": "missing"]),
                ])
        ]
        #expect(diagnostician.classify(permission)[0].steps[1].failure == .errorResponse(400))
    }

    @Test("A refused username coturn could never take is named as such, not as a secret mismatch")
    func usernameRefused() {
        let rejected = [
            target(
                "udp",
                [step(.allocation, .fail, failure: "credentials-rejected", facts: ["errorCode": "400"])])
        ]
        let context = Diagnostician.Context(usernameProblem: "holds a space", nowSeconds: now)
        let diagnoses = Diagnostician(context: context).diagnose(rejected)
        #expect(diagnoses.map(\.code.rawValue) == ["username-refused"])
        #expect(diagnoses.first?.summary.contains("their username holds a space") == true)
    }

    @Test("An answer that cannot be authenticated has its own diagnosis, saying it may be forged")
    func unauthenticatedAnswers() {
        for failure in ["response-integrity-missing", "response-integrity-invalid"] {
            let targets = [target("udp", [step(.binding, .pass), step(.allocation, .fail, failure: failure)])]
            let diagnoses = Diagnostician(context: .init(nowSeconds: now)).diagnose(targets)
            #expect(diagnoses.map(\.code.rawValue) == [failure])
            #expect(diagnoses.first?.summary.contains("could not be authenticated") == true)
            #expect(diagnoses.first?.summary.contains("forged") == true)
        }
    }

    @Test("Certificate names are the server's text: escaped, and at most ten shown")
    func certificateNamesEscaped() {
        let failed = target("tls", [step(.binding, .fail, failure: "tls")])
        let names = ["evil\u{1B}[2J\nAll 1 target(s) passed"] + (1...20).map { "n\($0).example" }
        let facts = Diagnostician.CertificateFacts(names: names, notValidAfter: now + 1, notValidAfterText: "then")
        let context = Diagnostician.Context(nowSeconds: now, certificates: [failed.address: facts])
        let summary = Diagnostician(context: context).diagnose([failed]).first?.summary ?? ""
        #expect(!summary.contains("\u{1B}") && !summary.contains("\n"))
        #expect(summary.contains("evil\\x1b[2J\\nAll 1 target(s) passed"))
        #expect(summary.contains("and 11 more") && !summary.contains("n11.example"))
    }

    @Test("A timeout is a blocked transport only when another transport answers; one diagnosis lists every target")
    func blockedOrDown() {
        let udpTimeout = target("udp", [step(.binding, .fail, failure: "timeout")])
        let tcpWorks = target("tcp", [step(.binding, .pass)])
        let blocked = Diagnostician(context: .init(nowSeconds: now)).diagnose([udpTimeout, tcpWorks])
        #expect(blocked.map(\.code.rawValue) == ["udp-blocked"])
        let down = Diagnostician(context: .init(nowSeconds: now)).diagnose([udpTimeout, udpTimeout])
        #expect(down.map(\.code.rawValue) == ["unreachable"])
        #expect(down.first?.targets.count == 1)
    }

    @Test("Certificates: expired beats a name mismatch; a valid, matching one is untrusted; wildcards match one label")
    func certificates() {
        let failed = target("tls", [step(.binding, .fail, failure: "tls")])
        func code(_ names: [String], notValidAfter: Int64) -> String? {
            let facts = Diagnostician.CertificateFacts(
                names: names, notValidAfter: notValidAfter, notValidAfterText: "then")
            let context = Diagnostician.Context(nowSeconds: now, certificates: [failed.address: facts])
            return Diagnostician(context: context).diagnose([failed]).first?.code.rawValue
        }
        #expect(code(["turn.example.org"], notValidAfter: now - 1) == "tls-expired")
        #expect(code(["other.example.org"], notValidAfter: now + 1) == "tls-name-mismatch")
        #expect(code(["turn.example.org"], notValidAfter: now + 1) == "tls-untrusted")
        #expect(code(["*.example.org"], notValidAfter: now + 1) == "tls-untrusted")
        #expect(code(["*.org"], notValidAfter: now + 1) == "tls-name-mismatch")
        #expect(Diagnostician(context: .init(nowSeconds: now)).diagnose([failed]).first?.code.rawValue == "tls-failed")
    }

    @Test("Relays: silence means the relay ports are blocked; 403 is denied-peer-ip; 486 and 508 are quotas")
    func relayAndErrors() {
        let codes = { (failure: String, stepName: StepReport.Name) in
            Diagnostician(context: .init(nowSeconds: self.now)).diagnose([
                self.target("udp", [self.step(stepName, .fail, failure: failure)])
            ])
            .map(\.code.rawValue)
        }
        #expect(codes("relay-silent", .relayChannelData) == ["relay-ports-blocked"])
        #expect(codes("error-403", .permission) == ["peer-denied"])
        #expect(codes("error-486", .allocation) == ["allocation-quota"])
        #expect(codes("error-508", .allocation) == ["relay-capacity"])
        #expect(codes("refused", .binding) == ["not-listening"])
        #expect(codes("protocol-violation", .binding) == ["broken-server"])
        #expect(codes("error-440", .allocation) == ["relay-family-unsupported"])
        #expect(codes("error-443", .permission) == ["peer-family-mismatch"])
    }

    @Test("A failure code is a plain string in JSON, as it always was")
    func failureCodeJSON() throws {
        let step = StepReport(
            step: .permission, status: .fail, milliseconds: 1, detail: "", failure: .errorResponse(403))
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(step)) as? [String: Any]
        #expect(json?["failure"] as? String == "error-403")
        let text = #"{"step":"binding","status":"fail","milliseconds":1,"detail":"","facts":{},"failure":"timeout"}"#
        let decoded = try JSONDecoder().decode(StepReport.self, from: Data(text.utf8))
        #expect(decoded.failure == .timeout)
    }

    @Test("A diagnosis code is a plain string in JSON, as it always was")
    func diagnosisCodeJSON() throws {
        let text = #"{"code":"udp-blocked","summary":"s","fix":"f","targets":[]}"#
        let diagnosis = try JSONDecoder().decode(Diagnosis.self, from: Data(text.utf8))
        #expect(diagnosis.code == .blocked("udp"))
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(diagnosis)) as? [String: Any]
        #expect(json?["code"] as? String == "udp-blocked")
    }

    @Test("403: allowed-peer-ip is advised only where coturn reads it (not for loopback or non-global IPv6 relays)")
    func peerDeniedAdvice() {
        func fix(_ relayed: String) -> String {
            let steps = [
                step(.allocation, .pass, facts: ["relayed": relayed]), step(.permission, .fail, failure: "error-403"),
            ]
            return Diagnostician(context: .init(nowSeconds: now)).diagnose([target("udp", steps)]).first?.fix ?? ""
        }
        #expect(fix("203.0.113.7:49160").contains("allowed-peer-ip=<the TURN server's public address>"))
        #expect(fix("[2001:db8::7]:49160").contains("allowed-peer-ip=<"))
        for loopback in ["127.0.0.1:49160", "[::1]:49160"] {
            #expect(fix(loopback).contains("allow-loopback-peers") && !fix(loopback).contains("allowed-peer-ip=<"))
        }
        for scoped in ["[fe80::1]:49160", "[fd00::1]:49160", "[fec0::1]:49160"] {
            #expect(fix(scoped).contains("4.13.1") && fix(scoped).contains("global relay-ip"), "\(scoped)")
        }
    }
}

@Suite("Probe report for people", .mayBlock)
struct ReportRendererTests {
    private func report(_ targets: [TargetReport]) -> String {
        ReportRenderer(colour: false).render(ProbeReport(targets: targets, diagnoses: []))
    }

    private func step(_ name: StepReport.Name, _ status: StepReport.Status, _ detail: String = "") -> StepReport {
        StepReport(step: name, status: status, milliseconds: 1, detail: detail)
    }

    @Test("Without credentials only Binding ran: the summary says relaying was not tested, never that calls work")
    func bindingOnly() {
        let turnSteps: [StepReport] =
            [step(.binding, .pass)]
            + [
                StepReport.Name.allocation, .permission, .relaySendData, .channel, .relayChannelData, .release,
                .otherFamily,
            ]
            .map {
                step($0, .skip)
            }
        let turn = TargetReport(uri: "turn:t.example", transport: "udp", address: "192.0.2.1:3478", steps: turnSteps)
        let stun = TargetReport(
            uri: "stun:t.example", transport: "udp", address: "192.0.2.1:3478", steps: [step(.binding, .pass)])
        for targets in [[turn], [turn, stun], [stun]] {
            let probe = ProbeReport(targets: targets, diagnoses: [])
            #expect(probe.passed)
            #expect(!probe.relayTested)
            let text = report(targets)
            #expect(!text.contains("calls through this server work"))
            #expect(text.contains("Binding passed on all \(targets.count) target(s)"))
            #expect(text.lowercased().contains("relaying was not tested"))
        }
        #expect(report([turn]).contains("--secret-file, --synapse-config, or --homeserver"))
        let full = TargetReport(
            uri: "turn:t.example", transport: "udp", address: "192.0.2.1:3478",
            steps: turnSteps.map { step($0.step, .pass) })
        #expect(ProbeReport(targets: [full, stun], diagnoses: []).relayTested)
        #expect(report([full, stun]).contains("All 2 target(s) passed: calls through this server work from here."))
    }

    @Test("No line of the report can be ended or forged by what a step's detail holds")
    func linesCannotBeForged() {
        let forged = "error 500 \n\nAll 1 target(s) passed: calls through this server work from here.\u{1B}[2K\u{2028}"
        let target = TargetReport(
            uri: "stun:t.example", transport: "udp", address: "192.0.2.1:3478",
            steps: [step(.binding, .fail, forged)])
        let text = report([target])
        // The target, its step, a blank line and the summary: nothing else.
        #expect(text.split(separator: "\n", omittingEmptySubsequences: false).count == 4)
        #expect(!text.split(separator: "\n").contains { $0.hasPrefix("All") })
        #expect(!text.contains("\u{1B}") && !text.contains("\u{2028}"))
    }
}
