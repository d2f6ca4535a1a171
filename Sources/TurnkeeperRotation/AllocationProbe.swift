import TurnkeeperCore
package import TurnkeeperCredentials
import TurnkeeperExecution
import TurnkeeperTURNClient

/// The question "does coturn accept this right now?", asked the way a client asks it: with an allocation.
public protocol CoturnProbe: Sendable {
    /// Where it asks (coturn.verify_uri), for messages.
    var uri: String { get }
    /// True when coturn granted an allocation with these credentials (released at once), false when it refused
    /// them (401). Anything else (no answer, another error) is thrown: it proves nothing either way.
    func grants(username: String, password: String) async throws -> Bool
}

extension CoturnProbe {
    /// Whether coturn accepts credentials signed with `secret`, minted as Synapse mints them. They expire a day
    /// from now: coturn judges expiry by the TURN host's clock, and a clock ahead by more than a short lifetime
    /// would refuse them for their age and pass for a secret coturn refuses (a false proof of a retirement).
    /// A day of skew is not hidden by this; `check` measures the clock itself (``CoturnClock``). The credential is
    /// never handed to anyone, and its allocation is released at once.
    package func accepts(_ secret: TurnSecret, now: Int64) async throws -> Bool {
        let credential = try CredentialMinter(secret: secret).credential(
            user: "@turnkeeper-rotation:localhost", expiry: now + 86_400)
        return try await grants(username: credential.username, password: credential.password)
    }

    /// Step 3: coturn must grant an allocation with `secret`.
    func verify(_ secret: TurnSecret, now: Int64) async throws {
        guard try await accepts(secret, now: now) else {
            throw TurnkeeperError(
                .verificationFailed, "coturn refused credentials signed with \(secret.fingerprint) (401)")
        }
    }
}

/// A real allocation at a TURN URI, released at once.
package struct AllocationProbe: CoturnProbe {
    package let uri: String
    package var timeout: Duration

    package init(uri: String, timeout: Duration = .seconds(10)) {
        self.uri = uri
        self.timeout = timeout
    }

    package func grants(username: String, password: String) async throws -> Bool {
        let verdict = try await TURNClient.allocateAndRelease(
            at: try TURNURI(uri), credentials: TURNCredentials(username: username, password: password),
            timeout: timeout)
        if case .granted = verdict { return true }
        return false
    }

    /// Asks again every 200 ms, each ask bounded by what is left, until coturn answers as `fileInForce` wants or
    /// `timeout` has passed: "" when it did, else what it did last (a restart takes coturn a moment).
    func awaitInForce(accepting: [TurnSecret], refusing: TurnSecret?, configFile: String, within timeout: Duration)
        async throws -> String
    {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var seen = "did not answer at \(uri)"
        while true {
            do {
                var attempt = self
                attempt.timeout = min(.seconds(3), max(.milliseconds(200), deadline - clock.now))
                seen = try await attempt.fileInForce(
                    accepting: accepting, refusing: refusing, configFile: configFile, now: WallClock.nowSeconds())
                if seen.isEmpty { return "" }
            } catch {
                seen = "did not answer at \(uri) (\(error))"
            }
            guard clock.now < deadline else { return seen }
            try await Pause.for(.milliseconds(200))
        }
    }

    /// "" when coturn accepts every secret of `accepting` and refuses `refusing`, else what it did instead.
    func fileInForce(accepting: [TurnSecret], refusing: TurnSecret?, configFile: String, now: Int64) async throws
        -> String
    {
        for secret in accepting {
            if try await !accepts(secret, now: now) {
                return "refuses \(secret.fingerprint), which \(configFile) holds: it still runs with the previous file"
            }
        }
        if let refusing, try await accepts(refusing, now: now) {
            return "still accepts \(refusing.fingerprint), which \(configFile) no longer holds: it still runs with "
                + "the previous file, or has that secret from another source (a --static-auth-secret flag in "
                + "coturn's unit, a user database)"
        }
        return ""
    }
}
