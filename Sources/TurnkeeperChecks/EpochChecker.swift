import TurnkeeperConfiguration
import TurnkeeperCore
import TurnkeeperCredentials
import TurnkeeperExecution
import TurnkeeperRotation
import TurnkeeperStores
import TurnkeeperSynapse

/// `turnkeeper check` for the two hosts of a separate TURN host. Each sees only its own side, plus what coturn
/// accepts; from which epochs coturn accepts, the Synapse host can tell whether the TURN host's clock (or its
/// turnkeeper) is an epoch or more out of step. Skew within an epoch cannot be seen, and does no harm.
struct EpochChecker {
    let host: Host
    let derivation: Configuration.Derivation
    let side: Side
    var now: @Sendable () -> Int64 = WallClock.nowSeconds

    /// Which of the two hosts this is, with what only that one has.
    enum Side {
        case turn(CoturnAccess)
        case synapse
    }

    var configuration: Configuration { host.configuration }

    private var onTURNHost: Bool {
        if case .turn = side { return true }
        return false
    }

    func run() async throws -> [Checker.Finding] {
        var findings: [Checker.Finding] = []
        func ok(_ summary: String) { findings.append(.init(ok: true, summary: summary, fix: nil)) }
        func problem(_ summary: String, _ fix: String) { findings.append(.init(ok: false, summary: summary, fix: fix)) }

        let keyFile = derivation.rootKeyFile
        let key = try await Blocking.run { try SecretFile.readRootKey(keyFile) }
        let epochs = EpochSecrets(
            rootKey: key, realm: configuration.coturn.realm, length: derivation.epoch.seconds)
        let epoch = epochs.epoch(at: now())
        // On the TURN host, as far back as it keeps epochs (and one more); on the Synapse host, which does not
        // know that setting, two back.
        let back = Int64(onTURNHost ? derivation.keepPreviousEpochs + 1 : 2)
        let window = (epoch - back)...(epoch + 2)
        let secrets = try window.map { try epochs.secret(for: $0) }
        ok("epoch \(epoch) (epochs of \(derivation.epoch.seconds) s, root key \(epochs.keyFingerprint))")

        // Which of epochs e-2 … e+2 coturn accepts.
        var accepted: [Int64] = []
        switch side {
        case .synapse:
            let paths = configuration.synapse.configPaths
            let synapse = try await Blocking.run { try SynapseConfig.load(paths) }
            if let problemText = configuration.scheduleProblem(lifetime: synapse.turnUserLifetime) {
                problem(
                    "\(synapse.location(of: "turn_user_lifetime") ?? "Synapse's default"): \(problemText).",
                    "Set rotation.epoch in \(configuration.path) to at least \(2 * synapse.turnUserLifetime.seconds) s, "
                        + "or shorten turn_user_lifetime there.")
            }
            if let current = synapse.turnSecret, let index = secrets.firstIndex(of: current) {
                let its = window.lowerBound + Int64(index)
                if its == epoch {
                    ok("Synapse signs with epoch \(epoch)'s secret (\(current.fingerprint))")
                } else {
                    problem(
                        "Synapse signs with epoch \(its)'s secret, not epoch \(epoch)'s.",
                        "Check that turnkeeper runs on this host (`systemctl status turnkeeper`).")
                }
            } else {
                problem(
                    "Synapse's secret is not derived from this root key and realm for any nearby epoch.",
                    "Run `\(configuration.command("rotate"))` on this host, and compare root keys by `turnkeeper secret fingerprint`."
                )
            }
            let probe = AllocationProbe(uri: configuration.coturn.verifyURI)
            // coturn judges expiry by the TURN host's clock: measured and judged against Synapse's lifetime. The
            // epochs below are asked with day-long credentials (``CoturnProbe/accepts(_:now:)``), which a clock
            // ahead by less than a day does not refuse.
            for secret in [synapse.turnSecret, secrets[Int(back)]].compactMap({ $0 }) {
                var quick = probe
                quick.timeout = .seconds(3)
                if let offset = try? await CoturnClock.offset(quick, secret: secret, now: now) {
                    findings += CoturnClock.findings(
                        offset: offset, lifetime: synapse.turnUserLifetime.seconds, uri: configuration.coturn.verifyURI,
                        here: "this host (Synapse's)")
                    break
                }
            }
            for (offset, secret) in secrets.enumerated() {
                do {
                    if try await probe.accepts(secret, now: now()) {
                        accepted.append(window.lowerBound + Int64(offset))
                    }
                } catch {
                    problem(
                        "coturn at \(configuration.coturn.verifyURI) does not answer (\(error)).",
                        "Start coturn on the TURN host; check the firewall between the hosts.")
                    return findings
                }
            }
        case .turn(let coturn):
            let held = try await coturn.open().secrets()
            accepted = window.filter { held.contains(secrets[Int($0 - window.lowerBound)]) }
            // coturn accepts turnserver.conf's static-auth-secret lines beside its database, whatever the store.
            let conf = try TurnserverConf.read(configuration)
            findings += CoturnAdvisories.findings(
                await CoturnAdvisories.installed(), conf: conf.map { ($0.path, $0.lines, $0.configured) })
            if let conf {
                if !configuration.coturn.store.isConfigFile {
                    findings += TurnserverConf.staticSecretFindings(
                        conf, store: configuration.coturn.store, configuration: configuration)
                }
            } else {
                ok(
                    "turnserver.conf: coturn.config_file is not set and \(Configuration.defaultTurnserverConf) was "
                        + "not found, so its static-auth-secret lines were not checked")
            }
        }

        let list = accepted.map(String.init).joined(separator: ", ")
        let range = "\(window.lowerBound)…\(window.upperBound)"
        let accepts =
            accepted.isEmpty ? "coturn accepts none of epochs \(range)" : "coturn accepts epochs \(list) of \(range)"
        if accepted.isEmpty {
            problem(
                "\(accepts): the TURN host holds no secret of this root key near now. Is turnkeeper running there, "
                    + "with the same root key (\(epochs.keyFingerprint)), realm and epoch length?",
                "On the TURN host: `systemctl status turnkeeper` and `turnkeeper secret fingerprint --secret-file "
                    + "ROOT-KEY`; compare with this host's.")
        } else if !accepted.contains(epoch) || !accepted.contains(epoch + 1) {
            problem(
                "\(accepts): the TURN host is behind this one by about an epoch. Its clock is slow, or its turnkeeper "
                    + "has stopped.",
                "On the TURN host: `timedatectl` (NTP on), `systemctl status turnkeeper`, then `turnkeeper rotate`.")
        } else if !accepted.contains(epoch - 1) {
            problem(
                "\(accepts): not the previous epoch, so credentials Synapse handed out before this epoch began are "
                    + "refused while they are still valid.",
                "On the TURN host: `turnkeeper status` and its journal; the previous epoch's secret must stay for a "
                    + "whole epoch.")
        } else if accepted.contains(epoch + 2) {
            problem(
                "\(accepts): the TURN host is ahead of this one by about an epoch, or this host's clock is slow.",
                "Enable NTP on both hosts (`timedatectl set-ntp true`) and compare `date -u`.")
        } else if onTURNHost {
            // This host cannot see which epoch Synapse signs with: only the Synapse host's check can.
            ok(
                "\(accepts): the current and next epochs, and \(epoch - (accepted.min() ?? epoch)) before. Whether "
                    + "Synapse signs with one of them is seen only by `turnkeeper check` on the Synapse host")
        } else {
            ok("\(accepts): the two hosts agree")
        }
        findings += await SecretInventory.findings(host)
        findings += await Reconciliation.findings(host)
        return findings
    }
}
