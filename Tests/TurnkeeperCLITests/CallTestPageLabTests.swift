import Foundation
import TestSupport
import Testing

/// The call test page in a real browser, run as a user runs it from behind the lab's NATs, against a real
/// Synapse and coturn: served by `turnkeeper run`, and as the static files of `turnkeeper calltest --out`
/// behind a web server that sends docs/calltest.md's Content-Security-Policy.
@Suite("The call test page from behind NATs", .mayBlock, .tags(.live))
struct CallTestPageLabTests {
    static let synapse = "http://203.0.113.20:8008"

    /// Nothing the page did was refused by its Content-Security-Policy, and no secret is in what it shows.
    static func expectClean(
        _ run: CallTestBrowser.Run, password: String, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        #expect(
            !run.console.contains { $0.contains("Content Security Policy") }, "\(run)", sourceLocation: sourceLocation)
        for text in [run.report, run.reportText, run.status, run.findings] {
            #expect(!text.contains(password), "the Matrix password is shown", sourceLocation: sourceLocation)
        }
        #expect(run.object["loggedOut"] as? Bool == true, "\(run)", sourceLocation: sourceLocation)
    }

    /// `turnkeeper run` on the Synapse host, serving the page at http://203.0.113.20:9478/calltest/ (log in
    /// daemon.log), once coturn's userdb has Synapse's secret, as an admin's first `rotate --resume` gives it.
    ///
    /// An adopted secret counts as never rotated, so the daemon rotates at once, restarting Synapse: returns
    /// once that rotation has switched Synapse (a page opened during the restart finds no homeserver).
    static func serve(_ lab: NATLab, _ setup: NATLabTests.PublicSetup) async throws -> ChildProcess {
        var daemon = TestConfiguration.Daemon()
        daemon.listen = "203.0.113.20:9478"
        daemon.calltestHomeserver = Self.synapse
        let config = try setup.rotationConfig(lab, daemon: daemon)
        let adopted = try lab.run("hs", [TurnkeeperBinary.path, "rotate", "--config", config, "--resume"])
        #expect(adopted.status == 0, "\(adopted)")
        let run = try lab.start("hs", [TurnkeeperBinary.path, "run", "--config", config], output: "daemon.log")
        let deadline = ContinuousClock.now + .seconds(300)
        while ContinuousClock.now < deadline && run.isRunning {
            let status = try lab.run("hs", [TurnkeeperBinary.path, "status", "--config", config, "--json"])
            let object = (try? JSONSerialization.jsonObject(with: Data(status.stdout.utf8))) as? [String: Any]
            if object?["lastRotation"] is NSNumber && object?["phase"] as? String == "idle" { return run }
            try await Task.sleep(for: .milliseconds(250))
        }
        let log = (try? String(contentsOfFile: lab.directory.file("daemon.log"), encoding: .utf8)) ?? ""
        _ = run.terminate()
        throw TestFailure("turnkeeper run did not finish its first rotation; its log:\n\(log.suffix(3000))")
    }

    @Test(
        "Served by turnkeeper run: from behind NAT A and symmetric NAT B every URI passes; UDP blocked at NAT A: said")
    func servedByDaemon() async throws {
        let lab = try NATLab()
        defer { #expect(lab.down().isEmpty, "namespaces left behind") }
        defer { #expect(LabBrowser.browsers(in: lab).isEmpty, "Chromium left running") }
        let setup = try NATLabTests.PublicSetup(
            lab, secretInCoturnConfig: false, supervised: true, synapseConf: BrowserNATLabTests.loginLimits)
        defer { setup.stop() }
        let run = try await Self.serve(lab, setup)
        defer { _ = run.terminate(grace: .seconds(30)) }

        let page = "http://203.0.113.20:9478/calltest/"
        for user in ["alice", "bob"] {
            let result = try CallTestBrowser.run(
                lab, host: user, url: page, user: user, password: "not-a-real-password")
            #expect(result.prefilled == Self.synapse, "\(result)")
            #expect(result.policy?.contains("connect-src 'self' http://203.0.113.20:8008;") == true, "\(result)")
            Self.expectClean(result, password: "not-a-real-password")
            #expect(result.uris.count == 2, "\(result)")
            for uri in result.uris {
                #expect(uri["passed"] as? Bool == true, "\(user): \(uri)\n\(result)")
                #expect((uri["relay"] as? String)?.hasPrefix("203.0.113.10:") == true, "\(uri)")
            }
            #expect(result.findingCodes.isEmpty && result.status.contains("2 of 2 TURN URIs passed"), "\(result)")
        }

        // Served off loopback, as here, the daemon says the page is then on plain http.
        let log = try String(contentsOfFile: lab.directory.file("daemon.log"), encoding: .utf8)
        #expect(log.contains("daemon.listen is not loopback"), "\(log.suffix(2000))")

        // alice's network now drops UDP to the TURN host, as many corporate networks do.
        let block = try lab.run(
            "nata",
            [
                "/usr/sbin/nft",
                "add table inet block ; add chain inet block forward { type filter hook forward "
                    + "priority 0 ; } ; add rule inet block forward ip daddr 203.0.113.10 meta l4proto udp drop",
            ])
        #expect(block.status == 0, "\(block)")
        let blocked = try CallTestBrowser.run(
            lab, host: "alice", url: page, user: "alice", password: "not-a-real-password")
        Self.expectClean(blocked, password: "not-a-real-password")
        let byTransport = Dictionary(
            blocked.uris.map { (($0["transport"] as? String) ?? "?", $0) }, uniquingKeysWith: { first, _ in first })
        #expect(byTransport["udp"]?["passed"] as? Bool == false && byTransport["udp"]?["relay"] is NSNull, "\(blocked)")
        #expect(byTransport["tcp"]?["passed"] as? Bool == true, "\(blocked)")
        #expect(blocked.findingCodes == ["udp-blocked"], "\(blocked)")
        #expect(
            blocked.findings.contains("UDP to port 3478 gets no answer while another transport works"), "\(blocked)")
        #expect(blocked.reportText.contains("udp-blocked"), "\(blocked)")
    }

    @Test("As static files behind a web server, from behind symmetric NAT B: the secret differs, and the page says so")
    func staticFilesWrongSecret() async throws {
        let lab = try NATLab()
        defer { #expect(lab.down().isEmpty, "namespaces left behind") }
        defer { #expect(LabBrowser.browsers(in: lab).isEmpty, "Chromium left running") }
        // coturn knows another secret than the one Synapse signs with: calls ring and never connect.
        let setup = try NATLabTests.PublicSetup(
            lab, synapseConf: BrowserNATLabTests.loginLimits,
            coturnSecret: "SomeOtherSecret0123456789abcdefghijklmnopqrstu")
        defer { setup.stop() }
        let out = lab.directory.file("www/calltest")
        try FileManager.default.createDirectory(atPath: lab.directory.file("www"), withIntermediateDirectories: false)
        let written = try ProcessRunner.run(
            TurnkeeperBinary.path, ["calltest", "--out", out, "--homeserver", Self.synapse])
        #expect(written.status == 0, "\(written)")
        // What docs/calltest.md's nginx snippet sends, from a small static server on the Synapse host.
        let policy =
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self' \(Self.synapse); "
            + "img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        let server = try lab.directory.write("serve.py", Self.staticServer)
        let web = try lab.start(
            "hs", [try SynapseServer.python(), server, lab.directory.file("www"), policy], output: "web.log")
        defer { _ = web.terminate() }

        let result = try CallTestBrowser.run(
            lab, host: "bob", url: "http://203.0.113.20:8080/calltest/", user: "bob", password: "not-a-real-password")
        Self.expectClean(result, password: "not-a-real-password")
        #expect(result.prefilled == Self.synapse && result.policy == policy, "\(result)")
        #expect(result.uris.count == 2 && result.uris.allSatisfy { $0["passed"] as? Bool == false }, "\(result)")
        #expect(Set(result.findingCodes) == ["credentials-rejected"], "\(result)")
        for uri in result.uris {
            let errors = uri["errors"] as? [[String: Any]] ?? []
            #expect(errors.contains { $0["code"] as? Int == 401 }, "\(uri)")
        }
        #expect(result.findings.contains("the secret differs"), "\(result)")
        #expect(result.findings.contains("turn_shared_secret"), "\(result)")
        #expect(result.reportText.contains("credentials-rejected"), "\(result)")
    }

    static let staticServer = """
        import functools, http.server, sys
        directory, policy = sys.argv[1:3]
        class Handler(http.server.SimpleHTTPRequestHandler):
            def end_headers(self):
                self.send_header("Content-Security-Policy", policy)
                self.send_header("X-Content-Type-Options", "nosniff")
                super().end_headers()
        http.server.ThreadingHTTPServer(("203.0.113.20", 8080),
                                        functools.partial(Handler, directory=directory)).serve_forever()
        """
}
