package import TurnkeeperConfiguration
import TurnkeeperCore
package import TurnkeeperCredentials
import TurnkeeperExecution
package import TurnkeeperStores
package import TurnkeeperSynapse

/// Step 4 and what decides it: Synapse's files, its restart, and proof that it answers and hands out the new
/// secret. Used by both the single host's rotation and the Synapse host of two.
package struct SynapseSwitch: Sendable {
    package let configuration: Configuration
    package let environment: SwitchEnvironment

    package init(configuration: Configuration, environment: SwitchEnvironment) {
        self.configuration = configuration
        self.environment = environment
    }

    private var synapse: Configuration.Synapse { configuration.synapse }

    /// What turnkeeper writes into Synapse's conf.d.
    package var files: SynapseSecretStore {
        SynapseSecretStore(
            confFile: synapse.managedFile,
            mode: synapse.secret.secretFile == nil ? .inline : .path,
            secretFile: synapse.secret.secretFile,
            group: synapse.group,
            options: .init(
                turnURIs: synapse.turnURIs, turnUserLifetime: synapse.turnUserLifetime,
                turnAllowGuests: synapse.turnAllowGuests),
            service: Self.account(group: synapse.group))
    }

    /// The account Synapse runs as: the user named like its group (Debian: matrix-synapse), else matrix-synapse.
    static func account(group: String) -> ServiceAccount? {
        ServiceAccount.lookup(group) ?? ServiceAccount.lookup("matrix-synapse")
    }

    /// The managed files can be written safely (no links, no other users' files); clears stale temporaries.
    package func checkWritable() async throws {
        let files = files
        try await Blocking.run { try files.checkWritable() }
    }

    /// The secret Synapse's configuration gives it now, if any.
    package func currentSecret() async throws -> TurnSecret? { try await signer()?.secret }

    /// The secret Synapse's configuration gives it now, read from its files as Synapse reads them, and the file
    /// and line that set it; nil when none does. What Synapse signs with after its next start, whatever
    /// turnkeeper's state says.
    package func signer() async throws -> (secret: TurnSecret, location: String, file: String?)? {
        let paths = synapse.configPaths
        let config = try await Blocking.run { try SynapseConfig.load(paths) }
        guard let secret = config.turnSecret else { return nil }
        let key = config.turnSecretPath != nil ? "turn_shared_secret_path" : "turn_shared_secret"
        let location = config.location(of: key).map { "\(key) at \($0)" } ?? "Synapse's configuration"
        return (secret, location, config.origins[key])
    }

    /// Checks everything that decides whether Synapse will end up using `secret`, without changing anything:
    /// the managed files can be written safely, Synapse's configuration reads, the managed file is one Synapse
    /// reads and no later file overrides it, and the lifetime fits the schedule. Returns Synapse's configuration
    /// as it will be once the files are written.
    package func preflight(for secret: TurnSecret) async throws -> SynapseConfig {
        try await checkWritable()
        let written = try files.render(secret)
        let paths = synapse.configPaths
        let after = try await Blocking.run { try SynapseConfig.load(paths, replacing: written) }
        guard after.files.contains(synapse.managedFile) else {
            throw TurnkeeperError(
                .invalidConfiguration,
                "Synapse would never read \(synapse.managedFile): it is neither one of synapse.config nor a *.yaml file "
                    + "directly in one of its directories (\(paths.joined(separator: ", "))). Nothing was changed. "
                    + "Point synapse.managed_file into Synapse's conf.d, or add its directory to synapse.config.")
        }
        for key in ["turn_shared_secret", "turn_shared_secret_path"] {
            if let origin = after.origins[key], origin != synapse.managedFile {
                throw TurnkeeperError(
                    .invalidConfiguration,
                    "\(after.location(of: key) ?? origin) sets \(key) and is read after \(synapse.managedFile), so "
                        + "Synapse would keep ignoring the secret turnkeeper writes. Nothing was changed. Remove "
                        + "\(key) from \(origin) (turnkeeper's file sets it), then run `turnkeeper rotate --resume`.")
            }
        }
        guard let effective = after.turnSecret, effective == secret else {
            throw TurnkeeperError(
                .invalidConfiguration,
                "with turnkeeper's file written, Synapse's configuration would still not use the new secret. Nothing "
                    + "was changed. Run `turnkeeper check` to see which file decides.")
        }
        if let problem = configuration.scheduleProblem(lifetime: after.turnUserLifetime) {
            let source = after.location(of: "turn_user_lifetime") ?? "Synapse's default lifetime"
            throw TurnkeeperError(
                .invalidConfiguration,
                "\(source): \(problem) (rotation.epoch is in \(configuration.path)). Nothing was changed.")
        }
        return after
    }

    /// What step 4 can truly say: what Synapse hands out is known only when it was checked through its API.
    package func switchedMessage(to secret: TurnSecret) -> String {
        synapse.apiCheck != nil
            ? "Synapse switched to \(secret.fingerprint): it hands out credentials signed with it, and coturn accepts them"
            : "Synapse switched to \(secret.fingerprint) (files written, restarted); what it hands out was not checked: "
                + "set synapse.homeserver and synapse.access_token_file for that"
    }

    /// Writes Synapse's files, restarts it (once per configuration, unless the policy says always) and checks
    /// that it answers and hands out the new secret. `expected` is Synapse's configuration once the files are
    /// written, from the preflight; `previous` the last restart recorded for this switch. Each restart is handed
    /// to `record` before its command runs (a restart that hangs or is killed counts as tried and failed) and
    /// again once it succeeded. Returns the last restart.
    package func switchSynapse(
        to secret: TurnSecret, expected: SynapseConfig, previous: RestartRecord?,
        probe: any CoturnProbe,
        record: (RestartRecord) async throws -> Void
    ) async throws -> RestartRecord? {
        let alreadyRestarted =
            previous?.secret == secret.fingerprint && previous?.configurationDigest == expected.digest
        // Written on every attempt, restarted or not: a file put back by hand since is set right again.
        let files = files
        try await Blocking.run { try files.write(secret) }
        var restart = previous
        if alreadyRestarted && environment.restartsOnlyOnChange, let previous {
            let when = WallClock.utcString(seconds: previous.at)
            guard previous.succeeded else {
                throw TurnkeeperError(
                    .restartFailed,
                    "the Synapse restart for \(secret.fingerprint) failed at \(when), and Synapse's configuration has not "
                        + "changed since, so it is not restarted again for the same failure. Fix the cause (`journalctl "
                        + "-u matrix-synapse`), then run `turnkeeper rotate --resume`.")
            }
            environment.say(
                "Synapse was restarted for \(secret.fingerprint) at \(when) with its configuration as it is now; not "
                    + "restarting it again for the same failure, only checking it again")
        } else {
            try await environment.restartDue()
            var attempt = RestartRecord(
                secret: secret.fingerprint, configurationDigest: expected.digest, at: environment.now(),
                succeeded: false)
            try await record(attempt)
            environment.say(
                "wrote \(synapse.managedFile); restarting Synapse: \(synapse.restartCommand.joined(separator: " "))")
            try await CommandRunner.run(synapse.restartCommand, what: "Synapse restart")
            attempt.succeeded = true
            try await record(attempt)
            restart = attempt
        }
        if let health = synapse.healthURL {
            try await waitUntilHealthy(health)
        }
        if let check = synapse.apiCheck {
            try await verifyThroughAPI(check, secret: secret, probe: probe)
        }
        return restart
    }

    private func waitUntilHealthy(_ health: String) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(120)
        while clock.now < deadline {
            if await TurnServerClient.isHealthy(health) { return }
            try await Pause.for(.milliseconds(200))
        }
        throw TurnkeeperError(
            .synapseUnhealthy,
            "Synapse did not answer \(health) within 120 s of its restart. Check `journalctl -u matrix-synapse`; "
                + "then run `turnkeeper rotate --resume`."
        )
    }

    /// What a Matrix client gets now must be signed with the new secret and accepted by coturn.
    private func verifyThroughAPI(_ check: Configuration.Synapse.APICheck, secret: TurnSecret, probe: any CoturnProbe)
        async throws
    {
        let tokenFile = check.accessTokenFile
        let token = try await Blocking.run { try FileContents.readValue(tokenFile, what: "a Matrix access token") }
        let advice = "Synapse and coturn both still accept it; fix the cause, then run `turnkeeper rotate --resume`."
        guard
            case .credentials(let answer) = try await TurnServerClient.fetch(
                homeserver: check.homeserver, accessToken: token)
        else {
            throw TurnkeeperError(
                .verificationFailed, "after the switch, \(check.homeserver) hands out no TURN credentials. \(advice)")
        }
        let verdict = try CredentialVerifier(secrets: [secret]).verify(
            username: answer.username, password: answer.password, nowSeconds: environment.now())
        guard case .valid = verdict else {
            throw TurnkeeperError(
                .verificationFailed,
                "after the switch, \(check.homeserver) hands out credentials not signed with the new secret "
                    + "(\(secret.fingerprint)): a conf.d file read after \(synapse.managedFile) may override it. \(advice)"
            )
        }
        let granted: Bool
        do {
            granted = try await probe.grants(username: answer.username, password: answer.password)
        } catch {
            throw TurnkeeperError(
                .verificationFailed,
                "after the switch, coturn at \(probe.uri) did not answer an allocation with the credentials "
                    + "\(check.homeserver) hands out (\(error)). \(advice)")
        }
        guard granted else {
            throw TurnkeeperError(
                .verificationFailed,
                "after the switch, coturn at \(probe.uri) refuses the credentials \(check.homeserver) hands out. \(advice)"
            )
        }
        environment.say("Synapse hands out credentials signed with \(secret.fingerprint), and coturn accepts them")
    }
}

extension SynapseSwitch: ConsumerSwitch {
    package var name: String { Configuration.synapseConsumer }
    package var label: String { "Synapse" }

    package func checkWritable(removingStale: Bool) async throws {
        let files = files
        try await Blocking.run { try files.checkWritable(removingStale: removingStale) }
    }

    package func preflight(for secret: TurnSecret, known: [TurnSecret]) async throws -> SwitchPlan {
        let expected = try await preflight(for: secret)
        return SwitchPlan(secret: secret, lifetime: expected.turnUserLifetime.seconds, prepared: .synapse(expected))
    }

    package func switchTo(
        _ plan: SwitchPlan, previous: RestartRecord?, probe: any CoturnProbe,
        record: (RestartRecord) async throws -> Void
    ) async throws -> String {
        guard case .synapse(let expected) = plan.prepared else {
            preconditionFailure("Synapse was handed another consumer's plan")
        }
        _ = try await switchSynapse(
            to: plan.secret, expected: expected, previous: previous, probe: probe, record: record)
        return switchedMessage(to: plan.secret)
    }

    /// Its files decide what it signs with after its next start; with synapse.access_token_file, what it hands
    /// out now is asked too, as the running Synapse may have read files since changed.
    package func lifetimeNow() async -> Int64? {
        let paths = synapse.configPaths
        return try? await Blocking.run { try SynapseConfig.load(paths) }.turnUserLifetime.seconds
    }

    package func keeps(_ secret: TurnSecret, candidates: [TurnSecret], now: Int64) async -> ConsumerKeep? {
        if let reason = await inUse(candidates: candidates, now: now).keeps(secret, label: label) {
            return ConsumerKeep(reason: reason)
        }
        guard let check = synapse.apiCheck else { return nil }
        do {
            let tokenFile = check.accessTokenFile
            let token = try await Blocking.run { try FileContents.readValue(tokenFile, what: "a Matrix access token") }
            guard
                case .credentials(let answer) = try await TurnServerClient.fetch(
                    homeserver: check.homeserver, accessToken: token)
            else { return nil }
            let signer = CredentialVerifier.signer(of: answer.username, answer.password, among: [secret], now: now)
            return signer == nil
                ? nil
                : ConsumerKeep(
                    reason: "Synapse hands out credentials signed with it now (\(check.homeserver)), though its files "
                        + "no longer name it: it runs with files changed since it started", runningOnly: true)
        } catch {
            return ConsumerKeep(
                reason: "whether the running Synapse hands out credentials signed with it cannot be told "
                    + "(\(check.homeserver): \((error as? TurnkeeperError)?.reason ?? "\(error)"))")
        }
    }

    package func inUse(candidates: [TurnSecret], now: Int64) async -> ConsumerUse {
        do {
            guard let (secret, location, _) = try await signer() else {
                return .none("Synapse's configuration sets no TURN secret")
            }
            return .signsWith(secret, source: "its configuration: \(location)")
        } catch {
            return .unknown(
                "Synapse's configuration cannot be read: \((error as? TurnkeeperError)?.reason ?? "\(error)")")
        }
    }
}
