import Glibc
import TurnkeeperConfiguration
import TurnkeeperCore
import TurnkeeperCredentials
import TurnkeeperExecution
import TurnkeeperRotation
import TurnkeeperStores
import TurnkeeperSynapse
import TurnkeeperTURNClient

/// `turnkeeper check` on a single host (``Host/check()``): Synapse's effective config and coturn's config and
/// database, read together, for the mistakes that make calls ring and never connect. Reads only; changes nothing.
public struct Checker {
    public struct Finding: Sendable, Codable {
        public var ok: Bool
        public var summary: String
        public var fix: String?
    }

    let host: Host
    let coturn: CoturnAccess

    var configuration: Configuration { host.configuration }

    /// The findings, problems and passes alike. Throws only when something could not be read at all.
    func run() async throws -> [Finding] {
        var list = FindingList()
        guard let synapse = try await synapseFindings(&list) else { return list.all }
        let (conf, coturnRealm) = try realmFindings(&list)
        // The installed coturn's known vulnerabilities, and what turnserver.conf does about them.
        list += CoturnAdvisories.findings(
            await CoturnAdvisories.installed(), conf: conf.map { ($0.path, $0.lines, $0.configured) })

        // coturn's secrets.
        guard let secret = synapse.turnSecret else {
            list.problem(
                "Synapse has no TURN secret (turn_shared_secret or turn_shared_secret_path), so /voip/turnServer answers {}.",
                "Run `\(configuration.command("rotate"))`: the first rotation sets one in Synapse and coturn together."
            )
            return list.all
        }
        guard
            let (accepted, heldUnder) = try await storeFindings(
                &list, secret: secret, conf: conf, coturnRealm: coturnRealm)
        else { return list.all }
        await acceptanceFindings(
            &list, synapse: synapse, secret: secret, accepted: accepted, heldUnder: heldUnder, conf: conf,
            coturnRealm: coturnRealm)
        confFindings(&list, conf: conf, coturnRealm: coturnRealm)
        await stateFindings(&list)
        return list.all
    }

    private var realm: String { configuration.coturn.realm }

    /// Synapse's configuration as Synapse reads it; nil when it cannot be read (the finding says why).
    private func synapseFindings(_ list: inout FindingList) async throws -> SynapseConfig? {
        let paths = configuration.synapse.configPaths
        let synapse: SynapseConfig
        do {
            synapse = try await Blocking.run { try SynapseConfig.load(paths) }
        } catch let error as TurnkeeperError {
            guard [.checkFailed, .invalidSecret, .invalidArgument].contains(error.code) else { throw error }
            list.problem(error.reason, "Change Synapse's config as the message says, then restart Synapse.")
            return nil
        }
        list += synapse.warnings.map { Finding(ok: false, summary: $0, fix: "See docs/configuration.md.") }
        if synapse.turnURIs.isEmpty {
            list.problem(
                "Synapse lists no turn_uris, so clients are given no TURN server.", "Add turn_uris to Synapse's config."
            )
        } else {
            for uri in synapse.turnURIs {
                if (try? TURNURI(uri)) == nil {
                    list.problem(
                        "turn_uris holds \"\(uri)\", which is not a STUN/TURN URI.",
                        "Write turn:HOST[:PORT][?transport=udp|tcp] or turns:HOST[:PORT].")
                }
            }
            list.ok("turn_uris: \(synapse.turnURIs.joined(separator: ", "))")
        }
        list.ok("turn_user_lifetime: \(synapse.turnUserLifetime.seconds) s")
        // What rotate would refuse before writing anything: check says so first.
        do {
            try host.synapseFiles.checkWritable(
                removingStale: false)
            if access(configuration.rotation.stateDirectory, F_OK) == 0 {
                _ = try TrustedDirectory(configuration.rotation.stateDirectory)
            }
            list.ok("turnkeeper's files can be written safely (no links, no other users' files or directories)")
        } catch {
            list.problem(
                error.reason, "Do what the message says; `\(configuration.command("rotate"))` refuses until then.")
        }
        // turnkeeper's file sets both keys; once it exists, a file that still wins for either overrides it.
        if (try? FileContents.read(configuration.synapse.managedFile)) != nil {
            for key in ["turn_shared_secret", "turn_shared_secret_path"] {
                if let origin = synapse.origins[key], origin != configuration.synapse.managedFile {
                    list.problem(
                        "\(synapse.location(of: key) ?? origin) is read after turnkeeper's "
                            + "\(configuration.synapse.managedFile) and sets \(key), so it overrides every rotation.",
                        "Remove \(key) from \(origin) (turnkeeper's file sets it), then run "
                            + "`\(configuration.command("rotate --resume"))`: it restarts Synapse onto the current secret."
                    )
                }
            }
        }

        return synapse
    }

    /// turnserver.conf, and whether its realm is turnkeeper's.
    private func realmFindings(_ list: inout FindingList) throws -> (TurnserverConf?, (value: String, line: Int)?) {
        // turnserver.conf: coturn.config_file, else /etc/turnserver.conf when it exists. Whatever the store,
        // its static-auth-secret lines are secrets coturn accepts, and its realm= is coturn's realm.
        let conf = try TurnserverConf.read(configuration)
        if conf == nil {
            list.ok(
                "turnserver.conf: coturn.config_file is not set and \(Configuration.defaultTurnserverConf) was not "
                    + "found, so coturn's own config was not checked")
        }
        let coturnRealm = conf?.realm
        if let conf, let coturnRealm, coturnRealm.value != realm {
            list.problem(
                "\(conf.path), line \(coturnRealm.line) sets realm=\(ServerText.escaped(coturnRealm.value)), coturn's realm, but "
                    + "turnkeeper's coturn.realm is \"\(realm)\" (\(configuration.path)): turnkeeper would read and write "
                    + "database rows coturn never uses.",
                "Set coturn.realm: \(ServerText.escaped(coturnRealm.value)) in \(configuration.path) if coturn's realm is right, or change "
                    + "that realm= line to \(realm) and restart coturn. Run check again before any rotation."
            )
        }

        return (conf, coturnRealm)
    }

    /// The secrets coturn's store accepts, and another realm that holds Synapse's; nil when the store is down.
    /// What else is checked is the store's own (``CoturnStoreCheck``).
    private func storeFindings(
        _ list: inout FindingList, secret: TurnSecret, conf: TurnserverConf?, coturnRealm: (value: String, line: Int)?
    ) async throws -> (accepted: [TurnSecret], heldUnder: String?)? {
        let context = StoreCheckContext(
            configuration: configuration, secret: secret, conf: conf, coturnRealm: coturnRealm)
        guard let result = try await coturn.open().checked(context, into: &list) else { return nil }
        return (result.accepted, result.heldUnder)
    }

    /// Whether coturn accepts what Synapse signs with, and if not, which side is wrong.
    private func acceptanceFindings(
        _ list: inout FindingList, synapse: SynapseConfig, secret: TurnSecret, accepted: [TurnSecret],
        heldUnder: String?, conf: TurnserverConf?, coturnRealm: (value: String, line: Int)?
    ) async {
        var accepted = accepted
        if let conf, !configuration.coturn.store.isConfigFile {
            list += TurnserverConf.staticSecretFindings(
                conf, store: configuration.coturn.store, inUse: accepted.contains(secret) ? nil : secret,
                configuration: configuration)
            accepted += conf.secrets.map(\.secret)
        }
        // What Synapse's files give it against turnkeeper's state: a file put back since the last rotation.
        let drift = try? await host.synapseSigning(rotating: false)?.drift
        if let drift {
            list.problem(drift, "See above; `\(configuration.command("check"))` again afterwards.")
        }
        if accepted.contains(secret) {
            list.ok("coturn accepts the secret Synapse uses (\(secret.fingerprint))")
            list += await Self.clockFindings(
                configuration, secret: secret, lifetime: synapse.turnUserLifetime.seconds, here: "this host")
        } else {
            let has = accepted.isEmpty ? "none" : accepted.map(\.fingerprint).joined(separator: ", ")
            if let coturnRealm, let conf, coturnRealm.value != realm {
                list.problem(
                    "coturn does not accept the secret Synapse uses (\(secret.fingerprint)): under its realm "
                        + "\"\(ServerText.escaped(coturnRealm.value))\" (\(conf.path), line \(coturnRealm.line)) it has \(has), while turnkeeper "
                        + "works under coturn.realm \"\(realm)\". Calls will ring and never connect.",
                    "Fix the realm first (see above): make coturn.realm in \(configuration.path) and coturn's realm= "
                        + "agree. Rotating before that would write rows coturn never reads.")
            } else if let heldUnder {
                list.problem(
                    "coturn's database holds the secret Synapse uses (\(secret.fingerprint)) only under realm "
                        + "\"\(ServerText.escaped(heldUnder))\", not under turnkeeper's coturn.realm \"\(realm)\". If coturn's realm is "
                        + "\"\(ServerText.escaped(heldUnder))\", turnkeeper's coturn.realm is wrong; otherwise calls will ring and never connect.",
                    "Set coturn.realm in \(configuration.path) to coturn's realm= (and coturn.config_file, so check can "
                        + "compare them). Rotating before that would write rows under the wrong realm.")
            } else if drift != nil {
                list.problem(
                    "coturn does not accept the secret Synapse uses (\(secret.fingerprint)); coturn has \(has). Calls "
                        + "will ring and never connect.",
                    "Synapse's files changed since turnkeeper last switched it: do what the finding above says (it "
                        + "names the file and line); `\(configuration.command("rotate --resume"))` then switches Synapse "
                        + "back to turnkeeper's current secret, which coturn accepts.")
            } else {
                list.problem(
                    "coturn does not accept the secret Synapse uses (\(secret.fingerprint)); coturn has \(has). Calls "
                        + "will ring and never connect.",
                    "Run `\(configuration.command("rotate --resume"))`: it adds back every secret turnkeeper holds "
                        + "that coturn's store lost, and on a first run adopts Synapse's secret into coturn."
                )
            }
        }

    }

    /// The rest of turnserver.conf, when turnkeeper was told it is coturn's.
    private func confFindings(
        _ list: inout FindingList, conf: TurnserverConf?, coturnRealm: (value: String, line: Int)?
    ) {
        if let conf, conf.configured {
            let path = conf.path
            let names = Set(conf.lines.compactMap(\.name))
            if !names.contains("use-auth-secret") {
                list.problem(
                    "\(path) lacks use-auth-secret: coturn ignores the shared secret.", "Add a line `use-auth-secret`.")
            }
            if names.contains("lt-cred-mech") {
                list.problem(
                    "\(path) mixes lt-cred-mech with use-auth-secret: coturn rejects Synapse's credentials.",
                    "Remove lt-cred-mech.")
            }
            if coturnRealm == nil {
                list.problem("\(path) sets no realm.", "Add `realm=\(realm)`.")
            }
            // Debian's own turnserver.conf sets syslog and ships no logrotate rule for coturn; turnkeeper restarts
            // coturn and never signals it. Only a SIGHUP would hurt (4.6.1 dies on it in this mode).
            if names.contains("syslog") {
                list.ok(
                    "\(path) logs to syslog, as Debian ships it: fine for turnkeeper, which restarts coturn and never "
                        + "signals it. Send coturn 4.6.1 no SIGHUP in this mode (no logrotate postrotate for it): it "
                        + "dies on one")
            }
            if !names.contains("denied-peer-ip") {
                list.problem(
                    "\(path) has no denied-peer-ip: anyone with credentials can relay into this host's private networks.",
                    "Add the denied-peer-ip ranges from docs (Synapse's coturn guide) and allowed-peer-ip=<this host's address>; "
                        + "`turnkeeper audit` then proves what coturn refuses."
                )
            }
        }
    }

    /// Secrets held against the world, and a rotation stopped part-way.
    private func stateFindings(_ list: inout FindingList) async {
        list += await SecretInventory.findings(host)
        list += await Reconciliation.findings(host)
        // A rotation stopped part-way: calls still work (coturn accepts both secrets), but no old secret retires
        // until it is finished.
        if let (phase, waiting) = await host.stoppedRotation() {
            list.problem(
                "a rotation stopped in phase \(phase)"
                    + (waiting.isEmpty ? "" : " with \(waiting.joined(separator: ", ")) not switched yet")
                    + "; coturn accepts the old and the new secret, and none retires until it is finished.",
                "Run `\(configuration.command("rotate --resume"))`; it says what stops it.")
        }
    }

    /// coturn's clock against this host's, measured at coturn.verify_uri with `secret` (see ``CoturnClock``),
    /// judged against the lifetime Synapse really uses. A coturn that does not answer is said, not judged.
    static func clockFindings(_ configuration: Configuration, secret: TurnSecret, lifetime: Int64, here: String)
        async -> [Finding]
    {
        let uri = configuration.coturn.verifyURI
        var probe = AllocationProbe(uri: uri)
        probe.timeout = .seconds(3)
        do {
            guard let offset = try await CoturnClock.offset(probe, secret: secret, now: WallClock.nowSeconds) else {
                return [
                    Finding(
                        ok: true,
                        summary: "coturn at \(uri) refused a credential signed with \(secret.fingerprint) and "
                            + "valid for a day, though it accepts that secret, so its clock was not compared with "
                            + "this host's",
                        fix: nil)
                ]
            }
            return CoturnClock.findings(offset: offset, lifetime: lifetime, uri: uri, here: here)
        } catch {
            return [
                Finding(
                    ok: true,
                    summary: "coturn at \(uri) did not answer an allocation (\(error)), so its clock was not compared "
                        + "with this host's",
                    fix: nil)
            ]
        }
    }
}

extension TurnserverConf {
    /// static-auth-secret lines beside a database: coturn accepts them too, so no rotation can retire them.
    /// `inUse`: Synapse's secret when the database lacks it; removing that line first would break every call.
    static func staticSecretFindings(
        _ conf: TurnserverConf, store: Configuration.Coturn.Store, inUse: TurnSecret? = nil,
        configuration: Configuration
    ) -> [Checker.Finding] {
        // Never the config-file store: its lines are coturn's only secrets, not beside a database.
        let kind = store.label
        return conf.secrets.map { line, secret in
            Checker.Finding(
                ok: false,
                summary:
                    "\(conf.path), line \(line): static-auth-secret (\(secret.fingerprint)) beside coturn's \(kind) "
                    + "user database: coturn accepts it as well as the database's secrets, so turnkeeper can never "
                    + "retire it.",
                fix: secret == inUse
                    ? "This is the secret Synapse uses now, and the database lacks it: removing the line first would "
                        + "break every call. Run `\(configuration.command("rotate"))` first (it adopts it into the "
                        + "database), then remove the line from \(conf.path) and restart coturn."
                    : "Make sure the database holds every secret still in use (`\(configuration.command("status"))`), "
                        + "then remove the static-auth-secret lines from \(conf.path) and restart coturn.")
        }
    }
}

/// Findings as a check collects them, in order.
struct FindingList {
    var all: [Checker.Finding] = []

    mutating func ok(_ summary: String) { all.append(Checker.Finding(ok: true, summary: summary, fix: nil)) }

    mutating func problem(_ summary: String, _ fix: String) {
        all.append(Checker.Finding(ok: false, summary: summary, fix: fix))
    }

    static func += (list: inout FindingList, more: [Checker.Finding]) { list.all += more }
}
