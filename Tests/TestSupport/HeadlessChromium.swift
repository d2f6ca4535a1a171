import Foundation

/// Debian's Chromium, headless, driven by Selenium (PyPI, in the Synapse venv): a real WebRTC stack with its
/// own ICE, TURN client, DTLS and SCTP. `relayCall` runs two RTCPeerConnections inside one page with
/// `iceTransportPolicy: "relay"`, so they can only meet through the TURN server, and reports what happened.
public enum HeadlessChromium {
    public struct RelayCall: Decodable, Sendable, CustomStringConvertible {
        /// "open" when the data channel opened; "no-relay" when both sides finished gathering without a relay
        /// candidate; "timeout" when neither happened within 45 s (a guard against a hang, not a measure).
        public let open: String
        /// What the far side received ("ping" when the data channel carried it).
        public let echoed: String?
        /// The selected local candidate's type ("relay") and its relay protocol (udp, tcp, tls).
        public let localType: String?
        public let relayProtocol: String?
        /// `icecandidateerror` events: "401 Unauthorized. turn:…".
        public let errors: [String]

        public var description: String {
            "open \(open), echoed \(echoed ?? "nothing"), local \(localType ?? "none")/\(relayProtocol ?? "-"), "
                + "errors \(errors)"
        }
    }

    static let page = """
        <!doctype html><meta charset="utf-8"><title>relay call</title>
        <script>
        async function relayCall(iceServers) {
          const config = {iceServers, iceTransportPolicy: "relay"};
          const a = new RTCPeerConnection(config), b = new RTCPeerConnection(config);
          const errors = [];
          let gathered = 0, finished = 0, noRelay;
          const gatheredNothing = new Promise(resolve => { noRelay = resolve; });
          for (const [pc, other] of [[a, b], [b, a]]) {
            pc.onicecandidate = e => {
              if (e.candidate) { gathered++; other.addIceCandidate(e.candidate).catch(x => errors.push(String(x))); }
              else if (++finished === 2 && gathered === 0) noRelay("no-relay");
            };
            pc.onicecandidateerror = e => errors.push(`${e.errorCode} ${e.errorText} ${e.url}`);
          }
          const channel = a.createDataChannel("probe");
          const received = new Promise(resolve => { b.ondatachannel = e => { e.channel.onmessage = m => resolve(m.data); }; });
          const opened = new Promise(resolve => { channel.onopen = resolve; });
          await a.setLocalDescription(); await b.setRemoteDescription(a.localDescription);
          await b.setLocalDescription(); await a.setRemoteDescription(b.localDescription);
          const timeout = new Promise(resolve => setTimeout(() => resolve("timeout"), 45000));
          const open = await Promise.race([opened.then(() => "open"), gatheredNothing, timeout]);
          let echoed = null;
          if (open === "open") { channel.send("ping"); echoed = await Promise.race([received, timeout]); }
          const stats = await a.getStats();
          let pair = null, local = null;
          stats.forEach(s => { if (s.type === "transport" && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId); });
          if (pair) local = stats.get(pair.localCandidateId);
          a.close(); b.close();
          return {open, echoed: echoed === "timeout" ? null : echoed, localType: local ? local.candidateType : null,
                  relayProtocol: local ? (local.relayProtocol || null) : null, errors};
        }
        </script>
        """

    /// The credential comes on standard input, never on a command line.
    static let driver = """
        import json, sys
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        page, profile = sys.argv[1:3]
        uri, username, password = json.loads(sys.stdin.read())
        options = webdriver.ChromeOptions()
        for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--user-data-dir=" + profile, "--use-fake-ui-for-media-stream",
                     "--use-fake-device-for-media-stream"]:
            options.add_argument(flag)
        options.binary_location = "/usr/bin/chromium"
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        try:
            driver.set_script_timeout(120)
            driver.get("file://" + page)
            result = driver.execute_async_script(
                "const done = arguments[arguments.length - 1];"
                "relayCall([{urls: arguments[0], username: arguments[1], credential: arguments[2]}])"
                ".then(done, e => done({open: 'error: ' + e, errors: []}));",
                uri, username, password)
            print(json.dumps(result))
        finally:
            driver.quit()
        """

    /// Fails loudly when Chromium, its driver or Selenium is missing: scripts/test.sh installs them.
    public static func relayCall(uri: String, username: String, password: String) throws -> RelayCall {
        for path in ["/usr/bin/chromium", "/usr/bin/chromedriver"] where access(path, X_OK) != 0 {
            throw TestFailure("\(path) is missing: apt-get install chromium chromium-driver (scripts/test.sh does)")
        }
        let directory = try TemporaryDirectory("turnkeeper-chromium")
        defer { directory.remove() }
        let page = try directory.write("page.html", page)
        let script = try directory.write("driver.py", driver)
        let input = String(
            decoding: try JSONSerialization.data(withJSONObject: [uri, username, password]), as: UTF8.self)
        let output = try ProcessRunner.run(
            try SynapseServer.python(), [script, page, directory.file("profile")], stdin: input,
            timeout: .seconds(200))
        guard output.status == 0, let line = output.stdout.split(separator: "\n").last else {
            throw TestFailure(
                "headless Chromium failed (is selenium in the venv? scripts/test.sh installs it): \(output)")
        }
        return try JSONDecoder().decode(RelayCall.self, from: Data(line.utf8))
    }
}
