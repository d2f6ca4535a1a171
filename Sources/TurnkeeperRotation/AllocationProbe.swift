import TurnkeeperCore
import TurnkeeperCredentials
import TurnkeeperExecution
import TurnkeeperStores
import TurnkeeperTURNClient

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
