import Glibc
package import TurnkeeperConfiguration
import TurnkeeperConsumers
import TurnkeeperCore
package import TurnkeeperCredentials
import TurnkeeperExecution
package import TurnkeeperStores
import TurnkeeperSynapse

/// Any other app: its file written from a template, then its command (argv, no shell, an empty environment:
/// the secret reaches it only through the file), then, when configured, proof that it hands out credentials
/// signed with the new secret.
package struct FileSwitch: ConsumerSwitch {
    package let name: String
    package let label: String
    package let file: Configuration.Consumer.File
    package let environment: SwitchEnvironment

    private var fileName: String { TrustedDirectory.split(file.path).name }

    package func checkWritable(removingStale: Bool) async throws {
        let path = file.path
        let name = fileName
        let group = file.group
        try await Blocking.run { () throws in
            if let group { _ = try GroupID.require(group, runsAs: "the app") }
            let directory = try TrustedDirectory(containing: path)
            try directory.checkReplaceable(name)
            if removingStale { directory.removeStaleTemporaries(for: name) }
        }
    }

    package func preflight(for secret: TurnSecret, known: [TurnSecret]) async throws -> SwitchPlan {
        try await checkWritable(removingStale: true)
        let template = try await template()
        let bytes = try template.render(secret)
        // A file already there is replaced only when it is what the template makes with a secret in use: anything
        // else would be content turnkeeper does not own.
        if let existing = try await destination(), try !matches(existing, template, [secret] + known) {
            throw TurnkeeperError(
                .unwritableFile,
                "\(label): \(file.path) exists and is not what \(file.template) makes with any secret coturn accepts, so "
                    + "replacing it would destroy content turnkeeper does not own. Nothing was changed. Make the "
                    + "template the whole file (a copy of it with \(SecretTemplate.placeholder) where the secret is), or "
                    + "move the file away.")
        }
        return SwitchPlan(secret: secret, lifetime: file.credentialLifetime.seconds, prepared: .bytes(bytes))
    }

    package func switchTo(
        _ plan: SwitchPlan, previous: RestartRecord?, probe: any CoturnProbe,
        record: (RestartRecord) async throws -> Void
    ) async throws -> String {
        guard case .bytes(let bytes) = plan.prepared else {
            preconditionFailure("\(label) was handed another consumer's plan")
        }
        let secret = plan.secret
        let path = file.path
        let name = fileName
        let group = file.group
        let mode = file.mode
        try await Blocking.run { () throws in
            let gid = try group.map { (name) throws(TurnkeeperError) in try GroupID.require(name, runsAs: "the app") }
            try TrustedDirectory(containing: path).write(
                bytes, to: name, permissions: mode, maximumPermissions: mode, group: gid, existing: .replace,
                enforcingGroup: true)
        }
        var done = "\(label): wrote \(path)"
        if let command = file.command {
            try await runCommand(
                command, for: secret, digest: ConsumerSwitches.digest(bytes), previous: previous, record: record)
            done += " and ran \(command.joined(separator: " "))"
        }
        if file.verifyURL != nil || file.verifyCommand != nil {
            try await verify(secret, probe: probe)
            return done + "; it hands out credentials signed with \(secret.fingerprint), and coturn accepts them"
        }
        return done + "; what it hands out was not checked (set verify_url or verify_command for that)"
    }

    package func lifetimeNow() async -> Int64? { file.credentialLifetime.seconds }

    package func inUse(candidates: [TurnSecret], now: Int64) async -> ConsumerUse {
        do {
            guard let existing = try await destination() else { return .none("\(file.path) does not exist yet") }
            let template = try await template()
            for candidate in candidates where (try? template.render(candidate)) == existing {
                return .signsWith(candidate, source: "its file, \(file.path)")
            }
            // Edited by hand, or the template changed since: a secret still written in it is still used.
            for candidate in candidates where candidate.withExposedBytes({ existing.contains(subsequence: $0) }) {
                return .signsWith(
                    candidate, source: "its file, \(file.path), which is not what \(file.template) makes with it")
            }
            return .none(
                "\(file.path) holds none of the secrets coturn or turnkeeper holds (changed by hand, or the template "
                    + "changed since)")
        } catch {
            return .unknown((error as? TurnkeeperError)?.reason ?? "\(error)")
        }
    }

    // MARK: Parts

    /// The template, which decides what root writes: refused unless root owns it and only root may change it.
    private func template() async throws -> SecretTemplate {
        let path = file.template
        let format = file.format
        return try await Blocking.run { () throws -> SecretTemplate in
            // Through its checked directory, never a link: whoever could swap it would choose what root copies
            // into a file the app's group reads.
            let contents = try TrustedDirectory(containing: path).read(TrustedDirectory.split(path).name)
            guard let contents else {
                throw TurnkeeperError(.unreadableFile, "\(path), the template, does not exist; nothing was changed.")
            }
            guard contents.permissions & 0o022 == 0 else {
                throw TurnkeeperError(
                    .invalidConfiguration,
                    "\(path) may be changed by users other than root, and it decides what turnkeeper writes as root. "
                        + "Run `chmod go-w \(path)`.")
            }
            return try SecretTemplate(bytes: contents.bytes, format: format, path: path)
        }
    }

    private func destination() async throws -> [UInt8]? {
        let path = file.path
        return try await Blocking.run { () throws -> [UInt8]? in
            try TrustedDirectory(containing: path).read(TrustedDirectory.split(path).name)?.bytes
        }
    }

    private func matches(_ bytes: [UInt8], _ template: SecretTemplate, _ secrets: [TurnSecret]) throws -> Bool {
        for secret in secrets where (try? template.render(secret)) == bytes { return true }
        return false
    }

    /// The command, once per content of the file unless the policy says always (as Synapse's restart).
    private func runCommand(
        _ command: [String], for secret: TurnSecret, digest: String, previous: RestartRecord?,
        record: (RestartRecord) async throws -> Void
    ) async throws {
        if let previous, previous.secret == secret.fingerprint, previous.configurationDigest == digest,
            environment.restartsOnlyOnChange
        {
            let when = WallClock.utcString(seconds: previous.at)
            guard previous.succeeded else {
                throw TurnkeeperError(
                    .restartFailed,
                    "\(label): its command failed at \(when) for \(secret.fingerprint), and its file has not changed "
                        + "since, so it is not run again for the same failure. Fix the cause, then run `turnkeeper "
                        + "rotate --resume`.")
            }
            environment.say("\(label): its command ran at \(when) for this file; only checking again")
            return
        }
        var attempt = RestartRecord(
            secret: secret.fingerprint, configurationDigest: digest, at: environment.now(), succeeded: false)
        try await record(attempt)
        environment.say("\(label): running \(command.joined(separator: " "))")
        do {
            try await CommandRunner.run(
                command, what: "\(label) command", timeoutSeconds: max(1, Int(file.commandTimeout.seconds)))
        } catch {
            throw TurnkeeperError(
                .restartFailed,
                "\(label): \(error.reason) Its file holds the new secret; coturn still accepts the old one too. Then run "
                    + "`turnkeeper rotate --resume`.")
        }
        attempt.succeeded = true
        try await record(attempt)
    }

    /// Polls the app's answer until it holds credentials, all signed with `secret`, one of which coturn grants,
    /// or command_timeout has passed.
    private func verify(_ secret: TurnSecret, probe: any CoturnProbe) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(max(1, file.commandTimeout.seconds))
        var failure = "no answer yet"
        while true {
            do {
                let credentials = try await handedOut()
                if credentials.isEmpty {
                    failure = "its answer holds no TURN credentials (JSON with username and credential or password)"
                } else if credentials.contains(where: {
                    CredentialVerifier.signer(of: $0.username, $0.password, among: [secret], now: environment.now())
                        == nil
                }) {
                    failure = "it still hands out credentials not signed with \(secret.fingerprint)"
                } else if try await probe.grants(username: credentials[0].username, password: credentials[0].password) {
                    return
                } else {
                    failure = "coturn at \(probe.uri) refuses the credentials it hands out"
                }
            } catch {
                failure = (error as? TurnkeeperError)?.reason ?? "\(error)"
            }
            guard clock.now < deadline else { break }
            try await Pause.for(.milliseconds(500))
        }
        throw TurnkeeperError(
            .verificationFailed,
            "\(label): after the switch, \(failure) (checked for command_timeout, \(file.commandTimeout.seconds) s). "
                + "coturn still accepts the old secret too; fix the cause, then run `turnkeeper rotate --resume`.")
    }

    private func handedOut() async throws -> [(username: String, password: String)] {
        let body: [UInt8]
        let source: String
        if let url = file.verifyURL {
            let answer = try await TurnServerClient.get(url, timeout: .seconds(10))
            guard answer.status == 200 else {
                throw TurnkeeperError(.verificationFailed, "\(url) answered HTTP \(answer.status)")
            }
            body = answer.body
            source = url
        } else if let command = file.verifyCommand {
            body = try await CommandRunner.run(command, what: "\(label) verify", timeoutSeconds: 30, capture: true)
            source = command.joined(separator: " ")
        } else {
            return []
        }
        guard let credentials = HandedOutCredentials.parse(body) else {
            throw TurnkeeperError(.verificationFailed, "what \(source) answered is not JSON")
        }
        return credentials
    }
}

extension Array where Element == UInt8 {
    /// Whether `needle` occurs in these bytes.
    fileprivate func contains(subsequence needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, needle.count <= count else { return false }
        return (0...(count - needle.count)).contains { start in
            self[start..<(start + needle.count)].elementsEqual(needle)
        }
    }
}
