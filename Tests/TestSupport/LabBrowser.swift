import Foundation
import Glibc

/// Headless Chromium inside a NAT lab namespace, acting as a Matrix client: it logs in to Synapse with a
/// password, asks `/voip/turnServer` for TURN credentials, captures Chromium's fake microphone and calls
/// another such browser through one `RTCPeerConnection`, with a data channel beside the audio. The two
/// exchange their SDP (gathered in full, no trickle) through files in a rendezvous directory: the test's
/// own signalling channel, which stands in for Matrix's `m.call.*` events.
public enum LabBrowser {
    /// What one party is told; it reaches the driver on standard input, never on a command line.
    public struct Options: Encodable, Sendable {
        public var homeserver: String
        public var user: String
        public var password: String
        /// "relay" (only TURN) or "all" (host and server-reflexive candidates too).
        public var policy = "relay"
        /// Signs with Synapse's username but this password: a credential of another secret.
        public var turnPassword: String?
        /// Replaces Synapse's TURN servers by this STUN URI alone: the call without TURN.
        public var stunOnly: String?
        /// Once connected, keep the call going until the test writes `stop` (see ``call(_:_:_:whileConnected:)``).
        public var hold = false

        public init(homeserver: String, user: String, password: String) {
            self.homeserver = homeserver
            self.user = user
            self.password = password
        }
    }

    public struct Result: Decodable, Sendable, CustomStringConvertible {
        /// "connected" (connected, and messages and audio arrived), "failed" (ICE gave up), "gathered" (a
        /// party alone, after gathering), "timeout" (the 90 s hang guard), or "error: …".
        public let stage: String
        /// Connection states in the order they came, each with the selected pair then ("connected relay/udp
        /// 203.0.113.10:49200 -> prflx :40312").
        public let states: [String]
        /// `icecandidateerror` events: "401 Unauthorized turn:…".
        public let errors: [String]
        public let relayCandidates: Int
        /// The candidate types this side gathered (host, srflx, relay).
        public let candidateTypes: [String]
        /// Data channel messages and audio RTP packets received from the other party.
        public let messages: Int
        public let audioPackets: Int
        /// The selected pair's candidate types and the local relay protocol.
        public let localType: String?
        public let remoteType: String?
        public let relayProtocol: String?
        /// After `stop`: how many more messages and packets arrived (nil without `hold`).
        public let messagesAfterStop: Int?
        public let audioPacketsAfterStop: Int?
        /// The access token the login created was invalidated at the end.
        public let loggedOut: Bool?
        /// Synapse's TURN URIs, as handed out.
        public let uris: [String]?

        public var description: String {
            "\(stage): states \(states), errors \(errors), candidates \(candidateTypes), relay \(relayCandidates), "
                + "pair \(localType ?? "-")/\(remoteType ?? "-") over \(relayProtocol ?? "-"), messages \(messages), "
                + "audio packets \(audioPackets), after stop \(messagesAfterStop.map(String.init) ?? "-")/"
                + "\(audioPacketsAfterStop.map(String.init) ?? "-"), logged out \(loggedOut.map(String.init) ?? "-")"
        }

        /// Connected with both kinds of traffic, over a pair with a relay on at least one end.
        public var relayed: Bool {
            stage == "connected" && messages > 0 && audioPackets > 0
                && (localType == "relay" || remoteType == "relay")
        }
    }

    /// One browser: its driver's process and the file its report goes to.
    public final class Party: Sendable {
        let process: ChildProcess
        let output: String
        public let profile: String

        init(process: ChildProcess, output: String, profile: String) {
            self.process = process
            self.output = output
            self.profile = profile
        }

        /// Waits for the driver to finish and reads its report; the page's own guards bound every wait in it.
        public func result() throws -> Result {
            let status = process.wait(timeout: .seconds(400)) ?? -1
            let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
            guard let line = text.split(separator: "\n").last(where: { $0.hasPrefix("{") }),
                let result = try? JSONDecoder().decode(Result.self, from: Data(line.utf8))
            else {
                throw TestFailure("the browser's driver ended with \(status) and no report:\n\(text.suffix(3000))")
            }
            return result
        }

        /// Chromium processes still running with this party's profile.
        public var leftovers: [String] {
            let listed = (try? ProcessRunner.run("/usr/bin/pgrep", ["-af", "user-data-dir=\(profile)"]))?.stdout
            return (listed ?? "").split(separator: "\n").map(String.init)
        }
    }

    /// Chromium processes still running with a profile of `lab`'s: each test checks there are none before the
    /// lab's removal would kill them.
    public static func browsers(in lab: NATLab) -> [String] {
        let listed = (try? ProcessRunner.run("/usr/bin/pgrep", ["-af", "user-data-dir=\(lab.directory.path)/"]))?
            .stdout
        return (listed ?? "").split(separator: "\n").map(String.init)
    }

    public enum Role: String, Sendable {
        /// Creates the offer; the answering party answers it.
        case offer, answer
        /// Alone: logs in, gathers candidates and reports, without calling anyone.
        case alone
    }

    /// Starts a browser in `host` of `lab`. Fails loudly when Chromium, its driver or Selenium is missing.
    public static func start(
        _ lab: NATLab, host: String, role: Role, rendezvous: String, options: Options
    ) throws -> Party {
        for path in ["/usr/bin/chromium", "/usr/bin/chromedriver"] where access(path, X_OK) != 0 {
            throw TestFailure("\(path) is missing: apt-get install chromium chromium-driver (scripts/test.sh does)")
        }
        let name = "browser-\(host)-\(role.rawValue)-\(UUID().uuidString.prefix(6))"
        let page = try lab.directory.write("\(name).html", Self.page)
        let driver = try lab.directory.write("\(name).py", Self.driver)
        let input = try lab.directory.write(
            "\(name).json", String(decoding: try JSONEncoder().encode(options), as: UTF8.self), mode: 0o600)
        let profile = lab.directory.file("\(name)-profile")
        let output = lab.directory.file("\(name).log")
        let argv = lab.argv(host, [try SynapseServer.python(), driver, page, profile, rendezvous, role.rawValue])
        let process = try ChildProcess(
            argv[0], Array(argv.dropFirst()), stdinPath: input, stdoutPath: output, stderrPath: output)
        return Party(process: process, output: output, profile: profile)
    }

    /// A call between two browsers: `first` offers, `second` answers. With `hold` set in both, the call
    /// stays up once both sides are connected until `whileConnected` has run, then each side waits for
    /// fresh messages and audio, proving the call outlived it.
    public static func call(
        _ lab: NATLab, _ first: (host: String, options: Options), _ second: (host: String, options: Options),
        whileConnected: (@Sendable () async throws -> Void)? = nil
    ) async throws -> (Result, Result) {
        let rendezvous = lab.directory.file("signalling-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(atPath: rendezvous, withIntermediateDirectories: false)
        let offer = try start(lab, host: first.host, role: .offer, rendezvous: rendezvous, options: first.options)
        let answer = try start(lab, host: second.host, role: .answer, rendezvous: rendezvous, options: second.options)
        if let whileConnected {
            // Both report "ready-ROLE" once connected (or failed); the drivers bound that wait themselves.
            let ready = ["offer", "answer"].map { rendezvous + "/ready-" + $0 }
            while !ready.allSatisfy({ access($0, F_OK) == 0 }) && (offer.process.isRunning || answer.process.isRunning)
            {
                try await Task.sleep(for: .milliseconds(100))
            }
            try await whileConnected()
            _ = try String("stop").write(toFile: rendezvous + "/stop", atomically: true, encoding: .utf8)
        }
        return (try offer.result(), try answer.result())
    }

    static let page = """
        <!doctype html><meta charset="utf-8"><title>lab call</title>
        <script>
        let pc, channel, token, homeserver, sender, relayCandidates = 0, messages = 0;
        const errors = [], states = [], candidateTypes = new Set();
        let uris = null;

        async function matrix(path, init) {
          const response = await fetch(homeserver + path, init);
          const body = await response.json().catch(() => ({}));
          if (!response.ok) throw new Error(`${path}: ${response.status} ${body.errcode || ""}`);
          return body;
        }

        // Logs in as a Matrix client does, takes Synapse's TURN credentials, opens the connection with the
        // fake microphone's audio and a data channel; the offering side returns its gathered offer.
        async function start(args) {
          homeserver = args.homeserver;
          const login = await matrix("/_matrix/client/v3/login", {method: "POST",
            headers: {"Content-Type": "application/json"},
            body: JSON.stringify({type: "m.login.password", identifier: {type: "m.id.user", user: args.user},
                                  password: args.password, initial_device_display_name: "lab browser"})});
          token = login.access_token;
          const turn = await matrix("/_matrix/client/v3/voip/turnServer",
                                    {headers: {Authorization: "Bearer " + token}});
          uris = turn.uris || [];
          const iceServers = args.stunOnly ? [{urls: [args.stunOnly]}]
            : [{urls: uris, username: turn.username, credential: args.turnPassword || turn.password}];
          pc = new RTCPeerConnection({iceServers, iceTransportPolicy: args.policy});
          pc.onicecandidate = e => {
            if (!e.candidate) return;
            candidateTypes.add(e.candidate.type);
            if (e.candidate.type === "relay") relayCandidates++;
          };
          pc.onicecandidateerror = e => errors.push(`${e.errorCode} ${e.errorText} ${e.url}`);
          pc.onconnectionstatechange = async () => {
            const state = pc.connectionState, {local, remote} = await selectedPair();
            states.push(state + (local ? ` ${local.candidateType}/${local.relayProtocol || ""} `
              + `${local.address}:${local.port} -> ${remote.candidateType} ${remote.address}:${remote.port}` : ""));
          };
          const stream = await navigator.mediaDevices.getUserMedia({audio: true});
          for (const track of stream.getTracks()) pc.addTrack(track, stream);
          channel = pc.createDataChannel("lab", {negotiated: true, id: 0});
          channel.onmessage = () => { messages++; };
          channel.onopen = () => { sender = setInterval(() => channel.send("hello from " + args.user), 100); };
          if (!args.offerer) return {};
          await pc.setLocalDescription();
          await gathered();
          return {sdp: pc.localDescription.sdp};
        }

        function gathered() {
          return new Promise(resolve => {
            if (pc.iceGatheringState === "complete") return resolve();
            pc.addEventListener("icegatheringstatechange", () => {
              if (pc.iceGatheringState === "complete") resolve();
            });
          });
        }

        async function answer(offer) {
          await pc.setRemoteDescription({type: "offer", sdp: offer});
          await pc.setLocalDescription();
          await gathered();
          return {sdp: pc.localDescription.sdp};
        }

        async function accept(sdp) { await pc.setRemoteDescription({type: "answer", sdp}); return {}; }

        async function audioPackets() {
          let packets = 0;
          (await pc.getStats()).forEach(s => {
            if (s.type === "inbound-rtp" && s.kind === "audio") packets += s.packetsReceived || 0;
          });
          return packets;
        }

        async function selectedPair() {
          const stats = await pc.getStats();
          let pair = null;
          stats.forEach(s => {
            if (s.type === "transport" && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
          });
          return {local: pair && stats.get(pair.localCandidateId), remote: pair && stats.get(pair.remoteCandidateId)};
        }

        async function report(stage) {
          const {local, remote} = await selectedPair();
          return {stage, states, errors, relayCandidates, candidateTypes: [...candidateTypes], messages,
                  audioPackets: await audioPackets(), localType: local ? local.candidateType : null,
                  remoteType: remote ? remote.candidateType : null,
                  relayProtocol: local ? (local.relayProtocol || null) : null, uris};
        }

        const tick = () => new Promise(resolve => setTimeout(resolve, 200));

        // getStats has no events: it is read every 200 ms until the call is up or ICE fails; 90 s is a hang
        // guard, not a measure.
        async function connect() {
          const guard = Date.now() + 90000;
          while (Date.now() < guard) {
            if (pc.connectionState === "failed") return report("failed");
            if (pc.connectionState === "connected" && messages >= 10 && await audioPackets() >= 50)
              return report("connected");
            await tick();
          }
          return report("timeout");
        }

        // After the interlude: more messages and audio must arrive, or the call died during it.
        async function afterStop() {
          const messagesBefore = messages, packetsBefore = await audioPackets();
          const guard = Date.now() + 60000;
          while (Date.now() < guard && (messages - messagesBefore < 10 || await audioPackets() - packetsBefore < 50))
            await tick();
          const result = await report(pc.connectionState === "connected" ? "connected" : pc.connectionState);
          return Object.assign(result, {messagesAfterStop: messages - messagesBefore,
                                        audioPacketsAfterStop: result.audioPackets - packetsBefore});
        }

        async function gatheringReport() { return report("gathered"); }

        // Hangs up and invalidates the access token the login created.
        async function finish() {
          clearInterval(sender);
          if (pc) pc.close();
          try {
            await matrix("/_matrix/client/v3/logout", {method: "POST", headers: {Authorization: "Bearer " + token}});
            return {loggedOut: true};
          } catch (e) { return {loggedOut: false}; }
        }
        </script>
        """

    /// Drives one party; every wait has a bound, and each side tells the other it is done before hanging up.
    static let driver = """
        import json, os, sys, time
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        page, profile, rendezvous, role = sys.argv[1:5]
        args = json.loads(sys.stdin.read())
        args["offerer"] = role in ("offer", "alone")
        other = {"offer": "answer", "answer": "offer"}.get(role)

        def wait_for(name, seconds):
            path = os.path.join(rendezvous, name)
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                if os.path.exists(os.path.join(rendezvous, "abort")):
                    raise RuntimeError("the other party gave up")
                if os.path.exists(path):
                    with open(path) as f:
                        return f.read()
                time.sleep(0.1)
            raise TimeoutError(f"no {name} from the other party within {seconds} s")

        def put(name, text):
            temporary = os.path.join(rendezvous, "." + name)
            with open(temporary, "w") as f:
                f.write(text)
            os.rename(temporary, os.path.join(rendezvous, name))

        options = webdriver.ChromeOptions()
        for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--user-data-dir=" + profile, "--use-fake-ui-for-media-stream",
                     "--use-fake-device-for-media-stream", "--no-first-run"]:
            options.add_argument(flag)
        options.binary_location = "/usr/bin/chromium"
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        result = {"stage": "error: not started"}

        def call(script, *arguments):
            answer = driver.execute_async_script(
                "const done = arguments[arguments.length - 1];"
                f"({script}).then(done, e => done({{error: String(e)}}));", *arguments)
            if answer.get("error"):
                raise RuntimeError(answer["error"])
            return answer

        try:
            driver.set_script_timeout(150)
            driver.get("file://" + page)
            # The answering side logs in and takes credentials when the offer arrives, as a client answering a
            # call does: credentials that live 4 s (the rotation test's) must still be valid when it gathers.
            offer = wait_for("offer", 150) if role == "answer" else None
            started = call("start(arguments[0])", args)
            if role == "alone":
                result = call("gatheringReport()")
            else:
                if role == "offer":
                    put("offer", started["sdp"])
                    call("accept(arguments[0])", wait_for("answer", 150))
                else:
                    put("answer", call("answer(arguments[0])", offer)["sdp"])
                result = call("connect()")
                put("ready-" + role, result["stage"])
                if args.get("hold"):
                    wait_for("stop", 600)
                    result = call("afterStop()")
                    put("after-" + role, result["stage"])
                    wait_for("after-" + other, 150)
                else:
                    wait_for("ready-" + other, 150)
            result.update(call("finish()"))
        except Exception as error:
            put("abort", str(role))
            result = dict(result, stage="error: " + str(error)[:500], states=[], errors=[], relayCandidates=0,
                          candidateTypes=[], messages=0, audioPackets=0)
        finally:
            driver.quit()
        print(json.dumps(result))
        """
}
