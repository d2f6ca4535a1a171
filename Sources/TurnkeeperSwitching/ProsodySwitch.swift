import Glibc
package import TurnkeeperConfiguration
import TurnkeeperConsumers
import TurnkeeperCore
package import TurnkeeperCredentials
import TurnkeeperExecution
package import TurnkeeperStores

/// A Prosody with mod_turn_external. turnkeeper owns one included file of its options; Prosody is made to
/// use a new secret through its admin socket, with no restart and no session dropped: `config reload` reads
/// the file, then `module reload turn_external` makes the module take the options (it reads them only when
/// it loads; either step alone changes nothing, as measured in docs/consumers.md). What each host hands out
/// afterwards is checked.
package struct ProsodySwitch: ConsumerSwitch {
    package let name: String
    package let label: String
    package let prosody: Configuration.Consumer.Prosody
    package let environment: SwitchEnvironment

    private var file: ProsodyConfigFile {
        ProsodyConfigFile(
            path: prosody.configFile,
            options: .init(
                host: prosody.turnHost, port: prosody.turnPort, tlsPort: prosody.tlsPort, tcp: prosody.tcp,
                user: prosody.turnUser, ttlSeconds: prosody.credentialLifetime.seconds))
    }

    private var fileName: String { TrustedDirectory.split(prosody.configFile).name }

    package func checkWritable(removingStale: Bool) async throws {
        let path = prosody.configFile
        let name = fileName
        let group = prosody.group
        try await Blocking.run { () throws in
            _ = try Self.groupID(group)
            let directory = try TrustedDirectory(containing: path)
            try Self.refuseForeign(name, in: directory)
            if removingStale { directory.removeStaleTemporaries(for: name) }
        }
    }

    package func preflight(for secret: TurnSecret, known: [TurnSecret]) async throws -> SwitchPlan {
        try await checkWritable(removingStale: true)
        return SwitchPlan(
            secret: secret, lifetime: prosody.credentialLifetime.seconds, prepared: .bytes(file.render(secret)))
    }

    package func switchTo(
        _ plan: SwitchPlan, previous: RestartRecord?, probe: any CoturnProbe,
        record: (RestartRecord) async throws -> Void
    ) async throws -> String {
        guard case .bytes(let bytes) = plan.prepared else {
            preconditionFailure("\(label) was handed another consumer's plan")
        }
        let secret = plan.secret
        let path = prosody.configFile
        let name = fileName
        let group = prosody.group
        // The file as it was, to put back if Prosody will not load the new one.
        let before = try await Blocking.run { () throws -> [UInt8]? in
            let gid = try Self.groupID(group)
            let directory = try TrustedDirectory(containing: path)
            let old = try Self.refuseForeign(name, in: directory)
            // 0640 root:prosody: Prosody re-reads every included file as its own user when it reloads.
            try directory.write(
                bytes, to: name, permissions: 0o640, maximumPermissions: 0o640, group: gid, existing: .replace,
                enforcingGroup: true)
            return old
        }
        environment.say("wrote \(path); reloading Prosody's config and mod_turn_external through its admin socket")
        do {
            let output = try await shell(ProsodyShell.reloadConfig, what: "Prosody config reload")
            guard ProsodyShell.configReloaded(output) else {
                throw TurnkeeperError(.commandFailed, "Prosody did not confirm the config reload")
            }
        } catch {
            let restored = await restore(before)
            throw TurnkeeperError(
                .restartFailed,
                "\(label): Prosody did not reload its config (\((error as? TurnkeeperError)?.reason ?? "\(error)")). "
                    + (restored
                        ? "\(path) was put back as it was, so Prosody keeps the old secret, which coturn still accepts. "
                        : "\(path) could not be put back; Prosody keeps the old secret until it reloads. ")
                    + "Run `\(prosody.prosodyctl.joined(separator: " ")) shell config reload` to see why (is the file "
                    + "readable by group \(prosody.group)? is Prosody running?), then `turnkeeper rotate --resume`.")
        }
        let reloaded = ProsodyShell.reloadedHosts(try await shell(ProsodyShell.reloadModule, what: "module reload"))
        guard let reloaded, reloaded >= 1 else {
            throw TurnkeeperError(
                .verificationFailed,
                "\(label): Prosody has mod_turn_external loaded on no host, so it hands out no TURN credentials at "
                    + "all. Add \"turn_external\" to modules_enabled in Prosody's config (for the hosts "
                    + "\(prosody.hosts.joined(separator: ", "))), reload Prosody, then run `turnkeeper rotate --resume`."
            )
        }
        try await verify(secret, probe: probe)
        return "\(label): Prosody (\(prosody.hosts.joined(separator: ", "))) hands out credentials signed with "
            + "\(secret.fingerprint), and coturn accepts them (reloaded, not restarted)"
    }

    package func lifetimeNow() async -> Int64? { prosody.credentialLifetime.seconds }

    package func inUse(candidates: [TurnSecret], now: Int64) async -> ConsumerUse {
        do {
            let handed = try await handedOut()
            guard let first = handed.credentials.first else {
                return .none("Prosody hands out no TURN credentials for \(prosody.hosts.joined(separator: ", "))")
            }
            guard
                let signer = CredentialVerifier.signer(of: first.username, first.password, among: candidates, now: now)
            else {
                return .none("Prosody hands out credentials signed with no secret coturn or turnkeeper holds")
            }
            return .signsWith(signer, source: "what Prosody hands out now")
        } catch {
            let path = prosody.configFile
            let secret = try? await Blocking.run { () throws -> TurnSecret? in
                let directory = try TrustedDirectory(containing: path)
                return try directory.read(TrustedDirectory.split(path).name).flatMap {
                    ProsodyConfigFile.secret(in: $0.bytes)
                }
            }
            let reason = (error as? TurnkeeperError)?.reason ?? "\(error)"
            guard let secret = secret ?? nil else {
                return .unknown("Prosody could not be asked (\(reason)), and \(path) holds no secret of turnkeeper's")
            }
            return .signsWith(secret, source: "\(path); Prosody itself could not be asked (\(reason))")
        }
    }

    // MARK: Prosody's answers

    /// Every configured host must hand out credentials, all signed with `secret`, and coturn must grant one.
    private func verify(_ secret: TurnSecret, probe: any CoturnProbe) async throws {
        let handed = try await handedOut()
        let advice =
            "Prosody keeps handing out the old secret's credentials, which coturn still accepts; fix the "
            + "cause, then run `turnkeeper rotate --resume`."
        if !handed.missing.isEmpty {
            throw TurnkeeperError(
                .verificationFailed,
                "\(label): Prosody has no host \(handed.missing.joined(separator: ", ")) with mod_external_services "
                    + "loaded (check consumers: hosts, and that turn_external is in modules_enabled). \(advice)")
        }
        for host in prosody.hosts {
            let credentials = handed.credentials.filter { $0.host == host }
            guard !credentials.isEmpty else {
                throw TurnkeeperError(
                    .verificationFailed,
                    "\(label): \(host) hands out no TURN credentials after the reload: mod_turn_external failed to "
                        + "start (`prosodyctl shell 'module:info(\"turn_external\")'` shows why). \(advice)")
            }
            for credential in credentials
            where CredentialVerifier.signer(
                of: credential.username, credential.password, among: [secret], now: environment.now()) == nil
            {
                throw TurnkeeperError(
                    .verificationFailed,
                    "\(label): \(host) still hands out credentials not signed with \(secret.fingerprint): a "
                        + "turn_external_secret set under its VirtualHost in prosody.cfg.lua, or in another included "
                        + "file read after \(prosody.configFile), overrides turnkeeper's. Remove it there. \(advice)")
            }
        }
        let sample = handed.credentials[0]
        let granted: Bool
        do {
            granted = try await probe.grants(username: sample.username, password: sample.password)
        } catch {
            throw TurnkeeperError(
                .verificationFailed,
                "\(label): coturn at \(probe.uri) did not answer an allocation with Prosody's credentials (\(error)). "
                    + advice)
        }
        guard granted else {
            throw TurnkeeperError(
                .verificationFailed,
                "\(label): coturn at \(probe.uri) refuses the credentials Prosody hands out. \(advice)")
        }
    }

    private func handedOut() async throws -> (credentials: [ProsodyShell.HandedOut], missing: [String]) {
        let output = try await shell([ProsodyShell.credentialsQuery(hosts: prosody.hosts)], what: "credentials query")
        return ProsodyShell.parseCredentials(output, hosts: prosody.hosts)
    }

    /// `prosodyctl … shell WORDS`, its answer as text. The admin socket needs root or Prosody's user.
    private func shell(_ words: [String], what: String) async throws -> String {
        let output = try await CommandRunner.run(
            prosody.prosodyctl + ["shell"] + words, what: "Prosody \(what)", timeoutSeconds: 30, capture: true)
        return String(decoding: output, as: UTF8.self)
    }

    /// Puts the file back as it was before this switch; false when that failed.
    private func restore(_ before: [UInt8]?) async -> Bool {
        let path = prosody.configFile
        let name = fileName
        let group = prosody.group
        do {
            try await Blocking.run { () throws -> Void in
                let directory = try TrustedDirectory(containing: path)
                if let before {
                    try directory.write(
                        before, to: name, permissions: 0o640, maximumPermissions: 0o640,
                        group: try Self.groupID(group), existing: .replace, enforcingGroup: true)
                } else {
                    try directory.remove(name)
                }
            }
            return true
        } catch {
            return false
        }
    }

    /// The file's bytes when turnkeeper wrote it, nil when there is none; anything else is refused.
    @discardableResult
    private static func refuseForeign(_ name: String, in directory: borrowing TrustedDirectory)
        throws(TurnkeeperError) -> [UInt8]?
    {
        guard let existing = try directory.read(name) else { return nil }
        guard ProsodyConfigFile.isOurs(existing.bytes) else {
            throw TurnkeeperError(
                .unwritableFile,
                "\(existing.path) exists and was not written by turnkeeper; nothing was written. Move its settings "
                    + "into prosody.cfg.lua or another included file and remove it, or name another config_file.")
        }
        return existing.bytes
    }

    static func groupID(_ group: String) throws(TurnkeeperError) -> UInt32 {
        try GroupID.require(group, runsAs: "the app (Debian's Prosody: prosody)")
    }
}
