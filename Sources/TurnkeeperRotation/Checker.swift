import TurnkeeperCore
import TurnkeeperCredentials
import TurnkeeperProbe
import TurnkeeperStores
import TurnkeeperSynapse

/// `turnkeeper check`: Synapse's effective config and coturn's config and database, read together,
/// for the mistakes that make calls ring and never connect. Reads only; changes nothing.
public struct Checker {
    public struct Finding: Sendable, Codable {
        public var ok: Bool
        public var summary: String
        public var fix: String?
    }

    public let configuration: Configuration

    public init(configuration: Configuration) { self.configuration = configuration }

    /// The findings, problems and passes alike. Throws only when something could not be read at all.
    public func run() async throws -> [Finding] {
        if configuration.role != .single { return try await EpochChecker(configuration: configuration).run() }
        var findings: [Finding] = []
        func ok(_ summary: String) { findings.append(Finding(ok: true, summary: summary, fix: nil)) }
        func problem(_ summary: String, _ fix: String) {
            findings.append(Finding(ok: false, summary: summary, fix: fix))
        }

        // Synapse.
        let synapse: SynapseConfig
        do {
            synapse = try SynapseConfig.load(configuration.synapse.configPaths)
        } catch {
            guard [.checkFailed, .invalidSecret, .invalidArgument].contains(error.code) else { throw error }
            problem(error.reason, "Fix Synapse's config as the message says, then restart Synapse.")
            return findings
        }
        findings += synapse.warnings.map { Finding(ok: false, summary: $0, fix: "See docs/configuration.md.") }
        if synapse.turnURIs.isEmpty {
            problem(
                "Synapse lists no turn_uris, so clients are given no TURN server.", "Add turn_uris to Synapse's config."
            )
        } else {
            for uri in synapse.turnURIs {
                if (try? TURNURI(uri)) == nil {
                    problem(
                        "turn_uris holds \"\(uri)\", which is not a STUN/TURN URI.",
                        "Write turn:HOST[:PORT][?transport=udp|tcp] or turns:HOST[:PORT].")
                }
            }
            ok("turn_uris: \(synapse.turnURIs.joined(separator: ", "))")
        }
        ok("turn_user_lifetime: \(synapse.turnUserLifetime.seconds) s")
        // turnkeeper's file sets both keys; once it exists, a file that still wins for either overrides it.
        if (try? FileContents.read(configuration.synapse.managedFile)) != nil {
            for key in ["turn_shared_secret", "turn_shared_secret_path"] {
                if let origin = synapse.origins[key], origin != configuration.synapse.managedFile {
                    problem(
                        "\(origin) is read after turnkeeper's \(configuration.synapse.managedFile) and sets \(key), so it "
                            + "overrides every rotation.",
                        "Move \(key) out of \(origin), or name a managed_file that sorts after it."
                    )
                }
            }
        }

        // coturn's secrets.
        guard let secret = synapse.turnSecret else {
            problem(
                "Synapse has no TURN secret (turn_shared_secret or turn_shared_secret_path), so /voip/turnServer answers {}.",
                "Run `turnkeeper rotate`: the first rotation sets one in Synapse and coturn together."
            )
            return findings
        }
        let accepted: [TurnSecret]
        switch configuration.coturn.store {
        case .sqlite:
            let store = CoturnSQLiteStore(path: configuration.coturn.database, realm: configuration.coturn.realm)
            accepted = try store.secrets()
            for realm in try store.realmsWithSecrets() where realm != configuration.coturn.realm {
                problem(
                    "coturn's database holds secrets under realm \"\(realm)\", which coturn (realm \(configuration.coturn.realm)) never reads.",
                    "Set coturn.realm to coturn's realm=, or remove those rows."
                )
            }
        case .config:
            accepted = try CoturnConfigStore(path: configuration.coturn.configFile ?? "/etc/turnserver.conf").secrets()
        case .redis, .postgres:
            // A shared database that is down fails every login on every coturn host: say so, plainly.
            let store = try Rotator(configuration: configuration, say: { _ in }).coturnSecrets()
            do {
                accepted = try await store.accepted()
            } catch {
                problem(
                    (error as? TurnkeeperError)?.reason ?? "\(error)",
                    "Start the database, and run it highly available (replicas with failover).")
                return findings
            }
            let kind = configuration.coturn.store == .redis ? "Redis" : "PostgreSQL"
            ok(
                "coturn's \(kind) user database answers (\(accepted.count) secret(s) under realm \(configuration.coturn.realm))"
            )
        }
        if accepted.contains(secret) {
            ok("coturn accepts the secret Synapse uses (\(secret.fingerprint))")
        } else {
            problem(
                "coturn does not accept the secret Synapse uses (\(secret.fingerprint)); coturn has "
                    + "\(accepted.isEmpty ? "none" : accepted.map(\.fingerprint).joined(separator: ", ")). Calls will ring and never connect.",
                "Run `turnkeeper rotate`: it adopts Synapse's secret into coturn first."
            )
        }

        // turnserver.conf, when it is known.
        if let path = configuration.coturn.configFile {
            let lines = CoturnConfigStore.parse(
                String(decoding: try FileContents.read(path, limit: 1 << 20).bytes, as: UTF8.self))
            let names = Set(lines.compactMap(\.name))
            let realm = lines.last { $0.name == "realm" }?.value
            if !names.contains("use-auth-secret") {
                problem(
                    "\(path) lacks use-auth-secret: coturn ignores the shared secret.", "Add a line `use-auth-secret`.")
            }
            if names.contains("lt-cred-mech") {
                problem(
                    "\(path) mixes lt-cred-mech with use-auth-secret: coturn rejects Synapse's credentials.",
                    "Remove lt-cred-mech.")
            }
            if realm == nil {
                problem("\(path) sets no realm.", "Add `realm=\(configuration.coturn.realm)`.")
            } else if realm != configuration.coturn.realm {
                problem(
                    "\(path) sets realm=\(realm ?? ""), but turnkeeper's coturn.realm is \(configuration.coturn.realm): database rows would be ignored.",
                    "Make them equal."
                )
            }
            if names.contains("syslog") {
                problem(
                    "\(path) logs to syslog, and coturn 4.6.1 dies on SIGHUP in that mode (logrotate sends one).",
                    "Use `log-file=stdout` (the journal keeps it) instead of syslog."
                )
            }
            if !names.contains("denied-peer-ip") {
                problem(
                    "\(path) has no denied-peer-ip: anyone with credentials can relay into this host's private networks.",
                    "Add the denied-peer-ip ranges from docs (Synapse's coturn guide) and allowed-peer-ip=<this host's address>."
                )
            }
        }
        return findings
    }
}
