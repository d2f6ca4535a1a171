import TurnkeeperConfiguration
import TurnkeeperCore
import TurnkeeperCredentials
import TurnkeeperExecution
import TurnkeeperStores

/// After turnkeeper took a secret out of coturn: proof, by a real allocation at coturn.verify_uri, that coturn
/// refuses it, or the reason it does not.
struct RetirementProof: Sendable {
    let configuration: Configuration
    let probe: any CoturnProbe
    let now: @Sendable () -> Int64

    /// Removes `secret` from `store`, then proves coturn refuses it: nil when retired, otherwise why not.
    /// `control`: a secret coturn must accept in the same pass, or the refusal proves nothing (a coturn whose
    /// own database connection is down refuses every login).
    func retire(_ secret: TurnSecret, from store: any CoturnSecretStore, control: TurnSecret?) async -> String? {
        do {
            try await store.remove(secret)
        } catch {
            return (error as? TurnkeeperError)?.reason ?? "\(error)"
        }
        return await failure(for: secret, control: control)
    }

    /// nil when coturn refused an allocation signed with `secret` (401) while it granted one signed with
    /// `control`; otherwise why it is not retired.
    func failure(for secret: TurnSecret, control: TurnSecret?) async -> String? {
        do {
            if try await !probe.accepts(secret, now: now()) {
                guard let control, control != secret else { return nil }
                if try await probe.accepts(control, now: now()) { return nil }
                return
                    "coturn at \(probe.uri) refuses the current secret (\(control.fingerprint)) too: it refuses every "
                    + "login now (is its own connection to its user database down? `journalctl -u coturn`), so its "
                    + "refusal of \(secret.fingerprint) proves nothing yet"
            }
        } catch {
            return "coturn at \(probe.uri) did not answer an allocation (\(error)), so its refusal of "
                + "\(secret.fingerprint) is not proven"
        }
        let reason = await Blocking.runOrDescribe { stillAccepted(secret) }
        return "coturn at \(probe.uri) still grants an allocation signed with \(secret.fingerprint): " + reason
    }

    /// Why coturn may still accept `secret` after turnkeeper removed it from coturn's store. Reads turnserver.conf.
    func stillAccepted(_ secret: TurnSecret) -> String {
        let elsewhere =
            "a --static-auth-secret flag in coturn's unit (`systemctl cat coturn`), another user database, or "
            + "a turnserver.conf other than the one turnkeeper reads (set coturn.config_file)"
        guard let (path, _) = configuration.turnserverConf else {
            return "no turnserver.conf was found (coturn.config_file is not set and "
                + "\(Configuration.defaultTurnserverConf) does not exist), so coturn has it from another source: "
                + elsewhere
        }
        let lines: [(line: Int, secret: TurnSecret)]
        do {
            lines = try CoturnConfigStore(path: path).secretLines()
        } catch {
            return "\(path) cannot be read (\(error.reason)); coturn may read it there as a static-auth-secret line, "
                + "or have it from another source: \(elsewhere)"
        }
        let naming = lines.filter { $0.secret == secret }.map(\.line)
        if !naming.isEmpty {
            let list = naming.map { "\(path), line \($0)" }.joined(separator: "; ")
            return "\(list): a static-auth-secret line names it, and coturn accepts static-auth-secret lines beside "
                + "its database. Remove that line, restart coturn, then run `turnkeeper rotate --resume`"
        }
        if case .config = configuration.coturn.store {
            return "\(path) no longer names it, so either coturn still runs with the old file (its restart did not "
                + "take effect: `systemctl status coturn`), or it has the secret from another source: \(elsewhere)"
        }
        return "\(path) names it on no static-auth-secret line, so coturn has it from another source: \(elsewhere)"
    }

    /// Before a rotation: a static-auth-secret line in turnserver.conf that keeps the current secret does not stop
    /// the rotation, but that secret's retirement will fail; said at the start, not first at step 5.
    static func staticLineWarning(_ current: TurnSecret, _ configuration: Configuration) async -> String? {
        if case .config = configuration.coturn.store { return nil }
        guard let (path, _) = configuration.turnserverConf else { return nil }
        let lines = try? await Blocking.run { try CoturnConfigStore(path: path).secretLines() }
        guard let held = lines?.first(where: { $0.secret == current }) else { return nil }
        return "warning: \(path), line \(held.line) keeps the current secret (\(held.secret.fingerprint)) as a "
            + "static-auth-secret: its retirement after this rotation will fail until that line is removed"
    }
}

extension Blocking {
    /// `work` on the thread pool; a pool that is shutting down runs nothing and answers why.
    static func runOrDescribe(_ work: @escaping @Sendable () -> String) async -> String {
        (try? await run(work)) ?? "the reason could not be read (turnkeeper is shutting down)"
    }
}
