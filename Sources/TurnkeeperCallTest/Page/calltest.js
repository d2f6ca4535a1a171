// turnkeeper call test: log in to a Matrix homeserver, fetch the TURN credentials Synapse hands out, and make a
// relay-only WebRTC call inside this page through each TURN URI. Diagnoses use `turnkeeper probe`'s words.
// Nothing is stored; server-supplied text is shown through textContent only, cleaned and bounded.
"use strict";

(function () {
  const MESSAGES = 50;
  const SEND_INTERVAL_MS = 100;
  const ECHO_GRACE_MS = 2000;
  // A hang guard for gathering, connecting and opening the channel; not a measurement.
  const GUARD_MS = 20000;
  const HTTP_TIMEOUT_MS = 20000;
  const LOSS_LIMIT_PERCENT = 5;
  const TEXT_LIMIT = 200;
  // A homeserver must not keep the page busy for ever with a long list.
  const MAX_URIS = 20;
  const NO_TURN =
    "Synapse hands out no TURN servers: set turn_uris and turn_shared_secret in Synapse's configuration " +
    "(turnkeeper init does) and restart Synapse.";
  const NO_TURN_FINDING = {
    code: "no-turn-servers", uri: null, problem: "Synapse hands out no TURN servers.",
    fix: "Set turn_uris and turn_shared_secret in Synapse's configuration (turnkeeper init does) and restart Synapse.",
  };
  const SECRET_DIFFERS =
    "This is the “the secret differs” case: Synapse and coturn do not share the same TURN secret.";

  const $ = (id) => document.getElementById(id);
  const sleep = (ms) => new Promise((done) => setTimeout(done, ms));
  const round = (x) => Math.round(x * 10) / 10;

  class CallTestError extends Error {
    constructor(message, finding) {
      super(message);
      this.finding = finding || null;
    }
  }

  function deferred() {
    let resolve;
    const promise = new Promise((done) => (resolve = done));
    return { promise, resolve };
  }

  // ---- Server text ----

  // C0, DEL, C1, soft hyphen, bidi controls, zero-width and other format characters, line/paragraph
  // separators: a server must not be able to reorder or forge lines of what the user and the admin read.
  const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]/g;

  function clean(value) {
    const chars = Array.from(String(value === undefined || value === null ? "" : value).replace(UNSAFE, ""));
    return chars.length > TEXT_LIMIT ? chars.slice(0, TEXT_LIMIT).join("") + "…" : chars.join("");
  }

  // No secret may reach the report, even if a server echoed one back. Server text that holds one is dropped
  // whole: replacing the secret in place would show where it stood, and so what it was.
  function scrub(text, secrets) {
    return secrets.some((secret) => text.includes(secret)) ? "[removed: it held a secret]" : text;
  }

  // ---- Addresses and URIs ----

  // RFC 7064/7065: stun:HOST[:PORT], turn:HOST[:PORT][?transport=udp|tcp], turns:HOST[:PORT]; IPv6 in brackets.
  function parseUri(uri) {
    // The host is a DNS name, an IPv4 address or a bracketed IPv6 one: nothing else reaches the findings.
    const match = /^(stuns?|turns?):(\[[0-9a-f:.]{2,45}\]|[a-z0-9.-]{1,253})(?::(\d{1,5}))?(?:\?([a-z0-9=&]{0,40}))?$/i
      .exec(uri);
    if (!match) return null;
    const scheme = match[1].toLowerCase();
    const secure = scheme === "turns" || scheme === "stuns";
    let transport = "udp";
    if (scheme === "turns") transport = "tls";
    else if (/(^|&)transport=tcp(&|$)/i.test(match[4] || "")) transport = "tcp";
    const port = match[3] ? Number(match[3]) : secure ? 5349 : 3478;
    return { scheme, host: match[2].toLowerCase(), port, transport };
  }

  const bare = (host) => host.replace(/^\[|\]$/g, "");
  const isLiteral = (host) => /^[\d.]+$/.test(bare(host)) || host.includes(":");
  const hostPort = (host, port) => (host.includes(":") && !host.startsWith("[") ? `[${host}]:${port}` : `${host}:${port}`);

  // Loopback, RFC 1918, CGNAT (100.64/10), link-local, unique-local (fc00::/7): what the probe calls private.
  function isPrivateAddress(address) {
    const text = bare(address).toLowerCase();
    const v4 = /^(?:::ffff:)?(\d{1,3})\.(\d{1,3})\.\d{1,3}\.\d{1,3}$/.exec(text);
    if (v4) {
      const [a, b] = [Number(v4[1]), Number(v4[2])];
      return a === 10 || a === 127 || a === 0 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168)
        || (a === 100 && b >= 64 && b <= 127) || (a === 169 && b === 254);
    }
    if (!text.includes(":")) return false;
    if (text === "::1") return true;
    const first = text.startsWith("::") ? 0 : parseInt(text.split(":")[0], 16);
    return (first & 0xfe00) === 0xfc00 || (first & 0xffc0) === 0xfe80;
  }

  // A name counts as public unless it can only be local: the browser cannot resolve it for us.
  function isPublicHost(host) {
    if (isLiteral(host)) return !isPrivateAddress(host);
    return !(host === "localhost" || /\.(localhost|local|internal|lan|home\.arpa)$/.test(host));
  }

  // ---- Matrix ----

  function normalizeHomeserver(input) {
    let text = input.trim();
    if (text && !/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) text = "https://" + text;
    let url = null;
    try {
      url = new URL(text);
    } catch (error) {
      // Reported below.
    }
    if (!url || (url.protocol !== "https:" && url.protocol !== "http:") || url.username || url.password) {
      throw new CallTestError("Enter the homeserver's address, like https://matrix.example.org.");
    }
    return (url.origin + url.pathname).replace(/\/+$/, "");
  }

  async function matrixRequest(homeserver, method, path, token, body) {
    const headers = {};
    if (body) headers["Content-Type"] = "application/json";
    if (token) headers.Authorization = "Bearer " + token;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), HTTP_TIMEOUT_MS);
    try {
      const response = await fetch(homeserver + path, {
        method, headers, body: body ? JSON.stringify(body) : undefined, signal: controller.signal,
        credentials: "omit", cache: "no-store", referrerPolicy: "no-referrer",
      }).catch(() => {
        // A network failure, CORS refusal, mixed content and a timeout all look the same from here.
        throw new CallTestError(
          `The homeserver at ${homeserver} could not be reached from this browser. Check the address, and that ` +
            `${homeserver}/_matrix/client/versions answers when opened in a new tab. A homeserver that does not ` +
            "allow requests from other sites (CORS), or an http: homeserver asked from an https: page, looks the same.");
      });
      const data = await response.json().catch(() => null);
      return {
        status: response.status,
        data: data && typeof data === "object" && !Array.isArray(data) ? data : {},
        retryAfter: Number(response.headers.get("Retry-After")) || 0,
      };
    } finally {
      clearTimeout(timer);
    }
  }

  function failure(what, reply) {
    if (reply.status === 429) {
      const ms = Number(reply.data.retry_after_ms) || reply.retryAfter * 1000;
      return `The homeserver is rate limiting ${what} (429): wait ${ms > 0 ? Math.ceil(ms / 1000) + " s" : "a while"} ` +
        "and try again.";
    }
    const text = reply.data.error ? `: ${clean(reply.data.error)}` : "";
    return `The homeserver refused ${what}: ${clean(reply.data.errcode || "no errcode")} (HTTP ${reply.status})${text}`;
  }

  async function login(homeserver, user, password) {
    const reply = await matrixRequest(homeserver, "POST", "/_matrix/client/v3/login", null, {
      type: "m.login.password",
      identifier: { type: "m.id.user", user },
      password,
      initial_device_display_name: "turnkeeper call test",
    });
    if (reply.status === 200 && typeof reply.data.access_token === "string") {
      return { token: reply.data.access_token, userId: clean(reply.data.user_id || user) };
    }
    if (reply.status === 403 && reply.data.errcode === "M_FORBIDDEN") {
      throw new CallTestError("Wrong user or password: the homeserver refused the login (M_FORBIDDEN).");
    }
    throw new CallTestError(failure("the login", reply));
  }

  async function whoami(homeserver, token) {
    const reply = await matrixRequest(homeserver, "GET", "/_matrix/client/v3/account/whoami", token);
    if (reply.status === 200 && typeof reply.data.user_id === "string") return clean(reply.data.user_id);
    throw new CallTestError(failure("the access token", reply));
  }

  async function logout(homeserver, token) {
    const reply = await matrixRequest(homeserver, "POST", "/_matrix/client/v3/logout", token, {}).catch(() => null);
    return Boolean(reply && reply.status === 200);
  }

  async function turnServer(homeserver, token) {
    const reply = await matrixRequest(homeserver, "GET", "/_matrix/client/v3/voip/turnServer", token);
    if (reply.status !== 200) throw new CallTestError(failure("the request for TURN credentials", reply));
    const data = reply.data;
    const uris = Array.isArray(data.uris) ? data.uris.filter((uri) => typeof uri === "string" && uri) : [];
    if (uris.length === 0) {
      throw new CallTestError(NO_TURN, NO_TURN_FINDING);
    }
    const username = typeof data.username === "string" ? data.username : "";
    // Synapse's usernames are <unix expiry>:<user ID>.
    const expiry = /^(\d{1,15})(:|$)/.exec(username);
    return {
      uris: Array.from(new Set(uris)),
      username,
      password: typeof data.password === "string" ? data.password : "",
      expiry: expiry ? Number(expiry[1]) : null,
      ttl: Number.isFinite(data.ttl) ? data.ttl : null,
    };
  }

  // ---- The call ----

  function addError(errors, code, text) {
    const entry = { code: Number.isFinite(code) ? code : null, text: clean(text) };
    if (!errors.some((e) => e.code === entry.code && e.text === entry.text)) errors.push(entry);
  }

  // From the candidate's fields, else from its SDP line: candidate:F C PROTO PRIO ADDRESS PORT typ relay …
  function relayOf(candidate) {
    const parts = candidate.candidate.split(" ");
    return {
      address: clean(candidate.address || parts[4] || ""),
      port: candidate.port || Number(parts[5]) || 0,
      protocol: candidate.relayProtocol ? clean(candidate.relayProtocol) : null,
    };
  }

  // A relay reaches peers of its own family only: each URI's relay family is reported, and both families' tally.
  function familyOf(address) {
    return address ? (address.includes(":") ? "IPv6" : "IPv4") : null;
  }

  // Where the candidate does not say its relay protocol, the selected pair's local candidate does.
  async function selectedRelayProtocol(pc) {
    const stats = await Promise.race([pc.getStats(), sleep(2000).then(() => null)]);
    let pair = null;
    if (stats) {
      stats.forEach((s) => {
        if (s.type === "transport" && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
        if (!pair && s.type === "candidate-pair" && s.selected) pair = s;
      });
    }
    const local = pair ? stats.get(pair.localCandidateId) : null;
    return local && local.relayProtocol ? clean(local.relayProtocol) : null;
  }

  // MESSAGES over ~5 s, each echoed by b; an echo counts when it comes within ECHO_GRACE_MS of the last send.
  async function measure(channel) {
    const rtts = new Map();
    const all = deferred();
    let deadline = Infinity;
    channel.onmessage = (event) => {
      const now = performance.now();
      let message = null;
      try {
        message = JSON.parse(event.data);
      } catch (error) {
        return;
      }
      const seq = message && message.seq;
      if (!Number.isInteger(seq) || seq < 0 || seq >= MESSAGES || rtts.has(seq) || now > deadline) return;
      rtts.set(seq, now - message.t);
      if (rtts.size === MESSAGES) all.resolve();
    };
    for (let seq = 0; seq < MESSAGES && channel.readyState === "open"; seq++) {
      if (seq > 0) await sleep(SEND_INTERVAL_MS);
      try {
        channel.send(JSON.stringify({ seq, t: performance.now() }));
      } catch (error) {
        break;
      }
    }
    deadline = performance.now() + ECHO_GRACE_MS;
    await Promise.race([all.promise, sleep(ECHO_GRACE_MS)]);
    channel.onmessage = null;
    const values = Array.from(rtts.values()).sort((x, y) => x - y);
    return {
      rttMs: values.length
        ? { p50: round(values[Math.floor((values.length - 1) / 2)]), max: round(values[values.length - 1]) }
        : null,
      lossPercent: round(((MESSAGES - values.length) / MESSAGES) * 100),
    };
  }

  // Two peer connections in this page that can meet only through the relay of `uri`.
  async function relayCall(uri, credential) {
    const result = {
      outcome: null, relay: null, relayAddress: null, relayProtocol: null, relayFamily: null, relayFamilies: [],
      connected: false, channelOpen: false, rttMs: null, lossPercent: null, errors: [],
    };
    const config = {
      iceServers: [{ urls: [uri], username: credential.username, credential: credential.password }],
      iceTransportPolicy: "relay",
    };
    const setup = deferred();
    const guard = setTimeout(() => setup.resolve("timeout"), GUARD_MS);
    let a = null;
    let b = null;
    try {
      a = new RTCPeerConnection(config);
      b = new RTCPeerConnection(config);
      const relays = new Map([[a, []], [b, []]]);
      const finished = new Set();
      const remoteSet = new Map([[a, deferred()], [b, deferred()]]);
      for (const [pc, other] of [[a, b], [b, a]]) {
        pc.onicecandidate = (event) => {
          const candidate = event.candidate;
          if (candidate && candidate.candidate) {
            relays.get(pc).push(relayOf(candidate));
            // A candidate can come before the other side has the description it belongs to.
            remoteSet.get(other).promise
              .then(() => other.addIceCandidate(candidate))
              .catch((error) => addError(result.errors, null, "addIceCandidate: " + (error && error.message)));
          } else if (!candidate) {
            finished.add(pc);
            // With relay only, a side that gathered nothing can never connect: an event, not a wait for the guard.
            if (finished.size === 2 && (!relays.get(a).length || !relays.get(b).length)) setup.resolve("no-relay");
          }
        };
        pc.onicecandidateerror = (event) => addError(result.errors, event.errorCode, event.errorText);
        pc.onconnectionstatechange = () => {
          if (pc.connectionState === "connected") result.connected = true;
          if (pc.connectionState === "failed") setup.resolve("failed");
        };
        pc.oniceconnectionstatechange = () => {
          if (pc.iceConnectionState === "connected" || pc.iceConnectionState === "completed") result.connected = true;
        };
      }
      // Unordered and never retransmitted, so that loss shows.
      const channel = a.createDataChannel("turnkeeper-calltest", { ordered: false, maxRetransmits: 0 });
      channel.onopen = () => {
        result.channelOpen = result.connected = true;
        setup.resolve("open");
      };
      b.ondatachannel = (event) => {
        const echo = event.channel;
        echo.onmessage = (message) => {
          if (echo.readyState === "open") echo.send(message.data);
        };
      };
      // Not awaited by itself, so that the guard also covers a negotiation that never ends.
      (async () => {
        await a.setLocalDescription(await a.createOffer());
        await b.setRemoteDescription(a.localDescription);
        remoteSet.get(b).resolve();
        await b.setLocalDescription(await b.createAnswer());
        await a.setRemoteDescription(b.localDescription);
        remoteSet.get(a).resolve();
      })().catch((error) => {
        addError(result.errors, null, "WebRTC negotiation: " + (error && error.message));
        setup.resolve("error");
      });

      const outcome = (result.outcome = await setup.promise);
      clearTimeout(guard);
      const relay = relays.get(a)[0] || relays.get(b)[0];
      if (relay) {
        result.relay = hostPort(relay.address, relay.port);
        result.relayAddress = relay.address;
        result.relayProtocol = relay.protocol;
        result.relayFamily = familyOf(relay.address);
      }
      result.relayFamilies = [...new Set([...relays.get(a), ...relays.get(b)].map((r) => familyOf(r.address)))]
        .filter(Boolean).sort();
      if (outcome === "open") {
        Object.assign(result, await measure(channel));
        if (!result.relayProtocol) result.relayProtocol = await selectedRelayProtocol(a);
      }
    } catch (error) {
      result.outcome = "error";
      addError(result.errors, null, "WebRTC: " + (error && error.message));
    } finally {
      clearTimeout(guard);
      if (a) a.close();
      if (b) b.close();
      // A late rejection of addIceCandidate must not change a report already handed out.
      result.errors = result.errors.slice();
    }
    return result;
  }

  // ---- Diagnosis: the words and fixes of `turnkeeper probe` (Diagnostician.swift) ----

  // A browser without icecandidateerror (older Firefox) cannot tell a wrong secret from an unreachable server.
  const REPORTS_TURN_ERRORS =
    typeof RTCPeerConnection !== "undefined" && "onicecandidateerror" in RTCPeerConnection.prototype;

  function diagnose(results, expiry, now) {
    const findings = [];
    const add = (code, r, problem, fix) => findings.push({ code, uri: r.uri, problem, fix });
    for (const r of results) {
      const { port } = r;
      const where = hostPort(r.host, port);
      const name = r.transport.toUpperCase();
      const codes = new Set(r.errors.map((e) => e.code));
      const quota = codes.has(486) || codes.has(508);
      const tls = r.transport === "tls" ? ` For turns:, this browser must also trust the certificate for ${bare(r.host)}.` : "";
      if (codes.has(486)) {
        add("allocation-quota", r, "The TURN server refused the allocation: the user's quota is reached (486).",
          "Raise user-quota in turnserver.conf, or find what holds allocations open.");
      }
      if (codes.has(508)) {
        add("relay-capacity", r, "The TURN server has no relay capacity left (508): relay ports or total-quota exhausted.",
          "Widen min-port..max-port or raise total-quota in turnserver.conf.");
      }
      if (!r.relay) {
        const otherWorks = results.some((o) => o.host === r.host && o.transport !== r.transport && o.relay);
        const refused = r.errors.find((e) => e.code !== null && ![401, 486, 508, 701].includes(e.code));
        if (r.outcome === "error") {
          const why = r.errors.length ? r.errors[r.errors.length - 1].text : "no reason given";
          add("browser-refused", r, `This browser could not set up a call through ${r.uri}: ${why}.`,
            "Check that the URI in Synapse's turn_uris is one browsers take: turn:HOST:PORT?transport=udp or tcp, " +
              "or turns:HOST:PORT. Try another browser to compare.");
        } else if (codes.has(401) && expiry !== null && expiry < now) {
          add("credentials-expired", r,
            `The TURN server refused the credentials because they expired ${Math.round(now - expiry)} s ago.`,
            "Fetch fresh credentials. If they were just minted, the clocks of the Synapse host and the TURN host " +
              "disagree (or this device's): enable NTP on both (`timedatectl set-ntp true`) and compare `date -u`.");
        } else if (codes.has(401) && expiry !== null && expiry > 2147483647) {
          add("credentials-expiry-too-late", r,
            "The TURN server refused the credentials: they expire after 2038-01-19 03:14:07 UTC, which coturn reads " +
              "as a negative (long past) timestamp.",
            "Shorten turn_user_lifetime in Synapse's config (the default 1h is right for calls) and restart Synapse.");
        } else if (codes.has(401)) {
          add("credentials-rejected", r,
            "The TURN server refused the credentials after they were sent. Calls will ring and never connect.",
            "The secret Synapse signs with (turn_shared_secret) differs from coturn's static-auth-secret, or " +
              "coturn's realm is unset, or lt-cred-mech is mixed with use-auth-secret. Compare " +
              "`turnkeeper secret fingerprint` of both secrets, set realm= in turnserver.conf, remove " +
              "lt-cred-mech, and restart coturn.");
        } else if (quota) {
          // Said above.
        } else if (refused) {
          add("allocation-refused", r, `The TURN server refused the allocation (${refused.code} ${refused.text}).`,
            "Look in coturn's log, at the time of this test, for why it refused this user.");
        } else if (!REPORTS_TURN_ERRORS) {
          add("no-relay-unexplained", r,
            `No relay through ${where}, and this browser does not report TURN errors, so the page cannot tell ` +
              "whether the secret differs or the TURN host is unreachable from here.",
            "Run the test in another browser (it is tested in Chromium), or ask the admin to run `turnkeeper probe`.");
        } else if (otherWorks) {
          add(`${r.transport}-blocked`, r, `${name} to port ${port} gets no answer while another transport works.`,
            `A firewall drops ${name} on port ${port}: this network's, or the TURN host's. From your side, a network ` +
              `that blocks ${name} (many corporate and guest networks do) is the likely cause; calls still work over ` +
              "the other transports' relays, which Synapse hands out. On the TURN host: open it " +
              `(\`nft add rule inet filter input ${r.transport === "udp" ? "udp" : "tcp"} dport ${port} accept\`) ` +
              `and in any cloud security group, or check that coturn listens on it.${tls}`);
        } else {
          add("unreachable", r, `${where} does not answer over ${name} from this network.`,
            `Check that coturn is running and listening on port ${port} (listening-port, tls-listening-port), and ` +
              "that no firewall drops the traffic. The TURN host is unreachable from here: try another network " +
              `(a phone's mobile data) to compare; if it answers there, this network blocks it.${tls}`);
        }
        continue;
      }
      if (isPrivateAddress(r.relayAddress) && isPublicHost(r.host)) {
        const publicAddress = isLiteral(r.host) ? bare(r.host) : `<public address of ${r.host}>`;
        add("external-ip-missing", r,
          `coturn hands out a private relayed address (${r.relay}) while it is reached at a public one ` +
            `(${where}): it sits behind NAT and peers cannot reach its relays.`,
          `Add external-ip=${publicAddress}/${bare(r.relayAddress)} to turnserver.conf and restart coturn.`);
      }
      // Nothing echoed is the probe's relay-silent: the relays carry nothing back.
      if ((!r.channelOpen || !r.rttMs) && !quota) {
        add("relay-ports-blocked", r, "Allocations work but nothing comes back through the relays: media cannot flow.",
          "A firewall blocks the relay port range. Open min-port..max-port (default 49152-65535) for UDP on the " +
            "TURN host and in any cloud security group. From a browser this looks the same as coturn refusing to " +
            "relay to its own relay addresses: if a denied-peer-ip range covers them, add allowed-peer-ip=<the TURN " +
            "server's public address> and restart coturn.");
      } else if (r.lossPercent > LOSS_LIMIT_PERCENT) {
        add("relay-loss", r, `Packets through the relays are being lost (${r.lossPercent}%).`,
          "Check the TURN host's network and load; calls will stutter. A weak Wi-Fi signal or a congested link on " +
            "this network does the same.");
      }
    }
    return findings;
  }

  // Findings that say the same thing are listed once with their URIs, as the probe does.
  function grouped(findings) {
    const groups = [];
    for (const f of findings) {
      const same = groups.find((g) => g.code === f.code && g.problem === f.problem && g.fix === f.fix);
      if (!same) groups.push({ code: f.code, problem: f.problem, fix: f.fix, uris: f.uri ? [f.uri] : [] });
      else if (f.uri && !same.uris.includes(f.uri)) same.uris.push(f.uri);
    }
    return groups;
  }

  // ---- Output ----

  function setStatus(text, isError) {
    $("status").textContent = text;
    $("status").classList.toggle("error", Boolean(isError));
  }

  function element(tag, text, className) {
    const node = document.createElement(tag);
    node.textContent = text;
    if (className) node.className = className;
    return node;
  }

  function addRow(entry) {
    const cells = [element("td", entry.uri, "uri"), element("td", entry.transport)];
    if (entry.tested === false) {
      cells.push(element("td", `not tested (${entry.reason})`, "untested"), element("td", "–"), element("td", "–"),
        element("td", "–"), element("td", "not tested", "untested"));
    } else {
      const details = [entry.relayProtocol, entry.relayFamily].filter(Boolean).join(", ");
      const relay = entry.relay ? entry.relay + (details ? ` (${details})` : "") : "none";
      cells.push(element("td", relay), element("td", entry.connected ? "yes" : "no"),
        element("td", entry.rttMs ? `${entry.rttMs.p50} / ${entry.rttMs.max} ms` : "–"),
        element("td", entry.lossPercent === null ? "–" : `${entry.lossPercent}%`),
        element("td", entry.passed ? "PASS" : "FAIL", entry.passed ? "pass" : "fail"));
    }
    // Narrow screens show each cell under its column's name (calltest.css).
    const labels = Array.from(document.querySelectorAll("#results thead th"), (th) => th.textContent);
    cells.forEach((td, i) => (td.dataset.label = labels[i]));
    const row = document.createElement("tr");
    row.append(...cells);
    document.querySelector("#results tbody").appendChild(row);
  }

  function renderFindings(report) {
    const list = $("findings");
    for (const g of grouped(report.findings)) {
      const item = document.createElement("li");
      const head = document.createElement("p");
      head.append(element("span", g.code, "code"), ": " + g.problem);
      item.appendChild(head);
      if (g.code === "credentials-rejected") item.appendChild(element("p", SECRET_DIFFERS));
      item.appendChild(element("p", "Fix: " + g.fix, "fix"));
      if (g.uris.length) item.appendChild(element("p", "Seen on: " + g.uris.join(", "), "targets"));
      list.appendChild(item);
    }
    if (!report.findings.length && !report.error && report.uris.length) {
      list.appendChild(element("li", report.uris.every((u) => u.passed)
        ? "No problems found: calls through these TURN servers work from this network."
        : "No diagnosis: see the table above."));
    }
  }

  const OUTCOMES = {
    "no-relay": "gathering finished without a relay candidate on one side or both",
    failed: "the connection failed",
    timeout: `gave up after ${GUARD_MS / 1000} s without an open data channel`,
    error: "the browser could not set up the call",
  };

  function reportText(report) {
    const lines = [
      "turnkeeper call test report",
      "Date: " + report.date,
      "Browser: " + clean(navigator.userAgent),
      "Homeserver: " + (report.homeserver || "(none)"),
      "User: " + (report.user || "(none)"),
    ];
    if (report.credentialExpiry) {
      const ttl = report.ttlSeconds !== null ? `, TTL ${report.ttlSeconds} s` : "";
      lines.push(`TURN credentials expire: ${report.credentialExpiry}${ttl}`);
    }
    if (report.error) lines.push("", "Error: " + report.error);
    for (const u of report.uris) {
      const rtt = u.rttMs ? `${u.rttMs.p50}/${u.rttMs.max} ms` : "-";
      const loss = u.lossPercent === null ? "-" : u.lossPercent + "%";
      lines.push("", u.uri,
        `  ${u.passed ? "PASS" : "FAIL"}  transport ${u.transport}, relay ${u.relay || "none"}` +
          (u.relayProtocol || u.relayFamily ? ` (${[u.relayProtocol, u.relayFamily].filter(Boolean).join(", ")})` : "") +
          `, connected ${u.connected ? "yes" : "no"}, ` +
          `channel ${u.channelOpen ? "open" : "not open"}, RTT p50/max ${rtt}, loss ${loss}`);
      if (OUTCOMES[u.outcome]) lines.push("  " + OUTCOMES[u.outcome]);
      for (const e of u.errors) lines.push(`  error ${e.code === null ? "-" : e.code} ${e.text}`);
    }
    for (const uri of report.notTested) lines.push("", uri, "  not tested: STUN only, or not a TURN URI");
    if (report.families) {
      lines.push("", "Relay families: " + ["IPv4", "IPv6"].map((family) => {
        const tally = report.families[family];
        return tally.uris ? `${family} passed on ${tally.passed} of ${tally.uris} URI(s)`
          : `no URI gave this browser an ${family} relay`;
      }).join("; ") + ".");
    }
    if (report.findings.length) lines.push("", "Findings:");
    for (const g of grouped(report.findings)) {
      lines.push(`- ${g.code}` + (g.uris.length ? ` (${g.uris.join(", ")})` : "") + ": " + g.problem);
      if (g.code === "credentials-rejected") lines.push("  " + SECRET_DIFFERS);
      lines.push("  Fix: " + g.fix);
    }
    const loggedOut = report.loggedOut === null ? "not needed (access token given, or no login)" : report.loggedOut ? "yes" : "FAILED";
    lines.push("",
      "Not tested: stun: URIs; this network beyond this page; calls between two different networks; audio and video.",
      "Logged out: " + loggedOut);
    return lines.join("\n");
  }

  function showCredentials(turn, report) {
    report.ttlSeconds = turn.ttl;
    // A Date cannot hold years past 275760; such an expiry is shown as absent.
    if (turn.expiry === null || turn.expiry >= 8.64e12) return;
    report.credentialExpiry = new Date(turn.expiry * 1000).toISOString();
    const left = Math.round(turn.expiry - Date.now() / 1000);
    const when = left < 0
      ? " (already past by this device's clock: this device's or the homeserver's clock is wrong)"
      : ` (in ${Math.round(left / 60)} min)`;
    $("credentials").textContent =
      `TURN credentials expire ${report.credentialExpiry}${when}` + (turn.ttl !== null ? `; TTL ${turn.ttl} s.` : ".");
  }

  // ---- The run ----

  let running = false;
  // The session this page logged in, until it is logged out; a token the user gave is never logged out.
  let ownSession = null;

  async function run(event) {
    event.preventDefault();
    if (running) return;
    running = true;
    $("start").disabled = true;
    window.turnkeeperCallTest = undefined;
    document.body.dataset.state = "running";
    setStatus("Starting…");
    for (const id of ["credentials", "findings", "copy-status"]) $(id).replaceChildren();
    document.querySelector("#results tbody").replaceChildren();
    $("report").value = "";

    const report = {
      date: new Date().toISOString(), homeserver: null, user: null, credentialExpiry: null, ttlSeconds: null,
      uris: [], notTested: [], findings: [], loggedOut: null, error: null, families: null,
    };
    // Held only to redact them from the report; emptied when the run ends.
    const secrets = [];
    const keep = (secret) => secret && secret.length >= 4 && secrets.push(secret);
    let homeserver = null;
    try {
      const user = $("user").value.trim();
      const password = $("password").value;
      let token = $("token").value.trim();
      keep(password);
      keep(token);
      report.user = clean(user) || null;
      homeserver = normalizeHomeserver($("homeserver").value);
      report.homeserver = clean(homeserver);
      if (!token && (!user || !password)) {
        throw new CallTestError("Enter a Matrix user and password, or an access token.");
      }
      // Read and checked: the secrets leave the form now.
      $("password").value = "";
      $("token").value = "";
      if (typeof RTCPeerConnection === "undefined") {
        throw new CallTestError("This browser cannot make WebRTC calls (no RTCPeerConnection), so it cannot run the test.");
      }
      if (token) {
        setStatus("Checking the access token…");
        report.user = await whoami(homeserver, token);
      } else {
        setStatus("Logging in…");
        const session = await login(homeserver, user, password);
        token = session.token;
        ownSession = { homeserver, token };
        keep(token);
        report.user = session.userId;
      }

      setStatus("Fetching the TURN credentials Synapse hands out…");
      const turn = await turnServer(homeserver, token);
      keep(turn.password);
      showCredentials(turn, report);

      const targets = [];
      for (const uri of turn.uris) {
        const parsed = parseUri(uri);
        const shown = scrub(clean(uri), secrets);
        if (parsed && parsed.scheme.startsWith("turn") && targets.length < MAX_URIS) {
          targets.push(Object.assign({ uri, shown }, parsed));
        } else {
          report.notTested.push(shown);
          const reason = !parsed ? "not a TURN URI" : parsed.scheme.startsWith("turn")
            ? `more than ${MAX_URIS} TURN URIs` : "STUN only";
          addRow({ uri: shown, transport: parsed ? parsed.transport : "?", tested: false, reason });
        }
      }

      // stun: alone relays nothing: for calls that need a relay, that is no TURN server at all.
      if (!targets.length) throw new CallTestError(NO_TURN, NO_TURN_FINDING);

      const results = [];
      for (const [i, t] of targets.entries()) {
        setStatus(`Calling through TURN server ${i + 1} of ${targets.length}: ${t.shown}…`);
        const call = await relayCall(t.uri, turn);
        Object.assign(call, { uri: t.shown, host: t.host, port: t.port, transport: t.transport });
        call.errors = call.errors.map((e) => ({ code: e.code, text: scrub(e.text, secrets) }));
        results.push(call);
      }

      report.findings = diagnose(results, turn.expiry, Date.now() / 1000);
      for (const r of results) {
        const fine = r.relay && r.connected && r.channelOpen && r.lossPercent !== null && r.lossPercent <= LOSS_LIMIT_PERCENT;
        const entry = {
          uri: r.uri, transport: r.transport, relay: r.relay, relayProtocol: r.relayProtocol, connected: r.connected,
          channelOpen: r.channelOpen, rttMs: r.rttMs, lossPercent: r.lossPercent, errors: r.errors, outcome: r.outcome,
          relayFamily: r.relayFamily, relayFamilies: r.relayFamilies,
          passed: Boolean(fine && !report.findings.some((f) => f.uri === r.uri)),
        };
        report.uris.push(entry);
        addRow(entry);
      }
      // Per family: how many URIs gave a relay of it, and how many of those passed.
      report.families = { IPv4: { uris: 0, passed: 0 }, IPv6: { uris: 0, passed: 0 } };
      for (const entry of report.uris) {
        if (!entry.relayFamily) continue;
        report.families[entry.relayFamily].uris += 1;
        if (entry.passed) report.families[entry.relayFamily].passed += 1;
      }
    } catch (error) {
      report.error = error instanceof CallTestError ? error.message : "Unexpected error: " + clean(error && error.message);
      if (error instanceof CallTestError && error.finding) report.findings.push(Object.assign({}, error.finding));
    } finally {
      if (ownSession) {
        setStatus("Logging out…");
        report.loggedOut = await logout(ownSession.homeserver, ownSession.token);
        ownSession = null;
      }
      if (report.error) report.error = scrub(report.error, secrets);
      secrets.length = 0;
      finish(report);
    }
  }

  function finish(report) {
    renderFindings(report);
    $("report").value = reportText(report);
    const logout = report.loggedOut === null ? "" : report.loggedOut
      ? " Logged out."
      : " Logging out FAILED: remove the session “turnkeeper call test” in your Matrix app's settings.";
    if (report.error) {
      setStatus(report.error + logout, true);
    } else {
      const passed = report.uris.filter((u) => u.passed).length;
      setStatus(`Done: ${passed} of ${report.uris.length} TURN URIs passed.${logout}`, passed < report.uris.length);
    }
    window.turnkeeperCallTest = { report };
    running = false;
    $("start").disabled = false;
    document.body.dataset.state = "done";
  }

  // ---- Page setup ----

  async function prefill() {
    try {
      const response = await fetch("config.json", { cache: "no-store", credentials: "same-origin" });
      const config = response.ok ? await response.json() : null;
      const field = $("homeserver");
      if (config && typeof config.homeserver === "string" && !field.value) field.value = config.homeserver.slice(0, 500);
    } catch (error) {
      // No usable config.json: the user types the homeserver.
    }
  }

  async function copyReport() {
    try {
      await navigator.clipboard.writeText($("report").value);
      $("copy-status").textContent = "Report copied.";
    } catch (error) {
      $("report").focus();
      $("report").select();
      $("copy-status").textContent = "The report is selected: copy it with Ctrl+C (⌘C on a Mac, or long-press on a phone).";
    }
  }

  // Closing the tab mid-run still invalidates the session the page created.
  window.addEventListener("pagehide", () => {
    if (!ownSession) return;
    fetch(ownSession.homeserver + "/_matrix/client/v3/logout", {
      method: "POST", keepalive: true, credentials: "omit", body: "{}",
      headers: { Authorization: "Bearer " + ownSession.token, "Content-Type": "application/json" },
    }).catch(() => {});
    ownSession = null;
  });
  $("form").addEventListener("submit", run);
  $("copy").addEventListener("click", copyReport);
  prefill();
})();
