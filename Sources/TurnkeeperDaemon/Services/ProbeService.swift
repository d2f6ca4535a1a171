import Logging
import ServiceLifecycle
import TurnkeeperConfiguration
import TurnkeeperCore
import TurnkeeperCredentialSource
import TurnkeeperCredentials
import TurnkeeperExecution
import TurnkeeperProbe
import TurnkeeperRotation
import TurnkeeperSynapse
import TurnkeeperTURNClient

/// Probes the TURN URIs every daemon.probe_interval (and right after a rotation) with credentials minted
/// from the current secret, and keeps the last result per URI and step for /readyz, /metrics and STATUS.
struct ProbeService: Service {
    let state: DaemonState
    let metrics: DaemonMetrics
    let logger: Logger
    let alarm: Alarm

    func run() async {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                // Not while turnkeeper itself restarts coturn or Synapse: the rotation service wakes this alarm
                // when its round ends.
                let snapshot = state.current
                if !snapshot.firstRoundDone || snapshot.rotating {
                    await alarm.sleep(for: .seconds(min(5, state.configuration.daemon.probeInterval.seconds)))
                    continue
                }
                await probeOnce()
                await alarm.sleep(for: .seconds(state.configuration.daemon.probeInterval.seconds))
            }
        }
    }

    func probeOnce() async {
        let host = state.host
        let configuration = host.configuration
        let texts = await Self.uris(configuration)
        var problems: [String] = []
        var uris: [TURNURI] = []
        for text in texts {
            do {
                uris.append(try TURNURI(text))
            } catch {
                // The parse error names the URI, escaped; the raw text is not printed.
                problems.append("a URI to probe is not a TURN URI: \(error)")
            }
        }
        let now = WallClock.nowSeconds()
        let signing = await Self.synapseSigning(host, rotating: state.current.rotating)
        let (credentials, expiry, problem) = await Self.credentials(host, synapse: signing, now: now)
        if let problem { problems.append(problem) }
        let drift = (try? signing?.get())?.drift
        if let drift { problems.append(drift) }
        let options = ProbeOptions(
            credentials: credentials, tls: TLSOptions(caFile: configuration.daemon.probeCAFile))
        let targets = await ProbeRunner.run(uris, options: options)
        let diagnoses = Diagnostician(
            context: .init(
                credentialExpiry: expiry, nowSeconds: now, storeProblem: await storeProblem(host, targets))
        ).diagnose(targets)
        problems += diagnoses.map { "\($0.summary) Fix: \($0.fix)" }
        for target in targets {
            for step in target.steps where step.status == .fail && diagnoses.isEmpty {
                problems.append("\(target.uri) at \(target.address): \(step.step.rawValue) failed: \(step.detail)")
            }
        }
        // A stop cancels the probe in flight: what it saw then says nothing about coturn.
        guard !Task.isCancelled else { return }
        let passed = problems.isEmpty && targets.allSatisfy(\.passed)
        let steps = Self.aggregate(targets)
        let wasPassing = state.current.probePassed
        let wasDrifting = state.current.synapseDrift != nil
        state.update {
            $0.probeSteps = steps
            $0.probePassed = passed
            $0.probeProblems = problems
            $0.lastProbe = now
            $0.synapseDrift = drift
        }
        metrics.record(state: state.current, now: now)
        if wasDrifting && drift == nil { logger.notice("Synapse signs with turnkeeper's current secret again") }
        if passed {
            if wasPassing != true { logger.info("probe passed: \(texts.joined(separator: ", "))") }
        } else {
            for problem in problems { logger.error("probe: \(problem)") }
        }
    }

    /// What Synapse's configuration makes it sign with, on a host that manages Synapse; nil elsewhere.
    static func synapseSigning(_ host: Host, rotating: Bool) async -> Result<SynapseSigning, any Error>? {
        do {
            return try await host.synapseSigning(rotating: rotating).map { .success($0) }
        } catch {
            return .failure(error)
        }
    }

    /// Credentials for five minutes, and their expiry; or why there are none. Signed with what Synapse's
    /// configuration gives it where this host manages Synapse (what its clients get, whatever turnkeeper's state
    /// says), else with the current secret.
    static func credentials(
        _ host: Host, synapse: Result<SynapseSigning, any Error>?, now: Int64
    ) async -> (TURNCredentials?, Int64?, problem: String?) {
        let configuration = host.configuration
        do {
            let current: TurnSecret?
            if let synapse {
                current = try synapse.get().secret
            } else {
                current = try await host.rotation(.init(now: WallClock.nowSeconds, say: { _ in })).currentSecret()
            }
            guard let secret = current else {
                return (nil, nil, "no current secret yet, so only what needs no credentials was tried")
            }
            // With a token, what the running Synapse hands out is what is probed; its files may have changed
            // since it started, and then it signs with what they named before.
            if synapse != nil, let api = configuration.synapse.apiCheck {
                let handed = try await CredentialSource.homeserver(
                    api.homeserver, accessTokenFile: api.accessTokenFile, caFile: nil
                ).resolve(user: "", lifetime: SynapseDuration(milliseconds: 300_000))
                guard let credentials = handed.credentials else { return (nil, nil, "Synapse hands out nothing") }
                let verdict = try CredentialVerifier(secrets: [secret]).verify(
                    username: credentials.username, password: credentials.password, nowSeconds: now)
                if case .noSecretMatched = verdict {
                    return (
                        credentials, handed.expiry,
                        "\(api.homeserver) hands out credentials not signed with the secret Synapse's files give it "
                            + "(\(secret.fingerprint)): Synapse runs with files changed since it started. Restart it "
                            + "(`systemctl restart matrix-synapse`) once its files are right, or run "
                            + "`\(configuration.command("rotate --resume"))`"
                    )
                }
                return (credentials, handed.expiry, nil)
            }
            let minted = try await CredentialSource.secret(secret).resolve(
                user: "@turnkeeper-probe:\(configuration.coturn.realm)",
                lifetime: SynapseDuration(milliseconds: 300_000),
                nowMilliseconds: now * 1000)
            return (minted.credentials, minted.expiry, nil)
        } catch {
            return (nil, nil, "cannot get credentials to probe with: \(describe(error))")
        }
    }

    /// Why coturn's store does not answer, when credentials were refused and it does not: coturn refuses every
    /// login while its database is down, and that must not be blamed on the secret. Asked now, not taken from
    /// the last reconciliation, which may be older than the outage.
    private func storeProblem(_ host: Host, _ targets: [TargetReport]) async -> String? {
        let refused = targets.contains { target in
            target.steps.contains { $0.status == .fail && $0.failure == .credentialsRejected }
        }
        guard refused, host.managesCoturn else { return nil }
        do {
            _ = try await host.coturnSecretCount()
            return nil
        } catch let error as TurnkeeperError where error.code == .storeUnreachable {
            return error.reason
        } catch {
            // Another fault (turnkeeper's own grants, a malformed entry) says nothing about coturn's logins.
            return nil
        }
    }

    /// What to probe: daemon.probe_uris, else the turn_uris Synapse hands clients, else coturn.verify_uri.
    static func uris(_ configuration: Configuration) async -> [String] {
        if let uris = configuration.daemon.probeURIs, !uris.isEmpty { return uris }
        let paths = configuration.synapse.configPaths
        if let synapse = try? await Blocking.run({ try SynapseConfig.load(paths) }), !synapse.turnURIs.isEmpty {
            return synapse.turnURIs
        }
        return [configuration.coturn.verifyURI]
    }

    /// One result per URI and step: failed if any address failed it, timed by the slowest.
    static func aggregate(_ targets: [TargetReport]) -> [DaemonState.ProbeStep] {
        var order: [String] = []
        var results: [String: DaemonState.ProbeStep] = [:]
        for target in targets {
            for step in target.steps where step.status != .skip {
                let key = target.uri + "\u{0}" + step.step.rawValue
                let seconds = step.milliseconds / 1000
                if var existing = results[key] {
                    existing.passed = existing.passed && step.status == .pass
                    existing.seconds = max(existing.seconds, seconds)
                    results[key] = existing
                } else {
                    order.append(key)
                    results[key] = DaemonState.ProbeStep(
                        uri: target.uri, step: step.step.rawValue, passed: step.status == .pass, seconds: seconds)
                }
            }
        }
        return order.compactMap { results[$0] }
    }
}

/// An error's reason without a Swift type dump, for logs and STATUS.
func describe(_ error: any Error) -> String {
    (error as? TurnkeeperError)?.reason ?? "\(error)"
}
