import TurnkeeperCore
import TurnkeeperCredentials
import TurnkeeperRotation
import TurnkeeperStores

/// coturn judges a credential's expiry by its own clock, which is the TURN host's. It refuses a credential
/// whose expiry is behind that clock, so the earliest expiry it still grants tells its clock: found by
/// bisection, with allocations, to within about a second and a round trip.
enum CoturnClock {
    /// How far the search reaches either way.
    static let reach: Int64 = 86_400

    /// coturn's clock minus this host's, in seconds; nil when coturn refuses `secret` even a day ahead (then the
    /// secret, not the clock, is the problem). About 18 allocations.
    static func offset(_ probe: any CoturnProbe, secret: TurnSecret, now: @Sendable () -> Int64) async throws
        -> Int64?
    {
        let minter = try CredentialMinter(secret: secret)
        func grants(_ ahead: Int64) async throws -> Bool {
            let credential = minter.credential(user: "@turnkeeper-clock:localhost", expiry: now() + ahead)
            return try await probe.grants(username: credential.username, password: credential.password)
        }
        guard try await grants(reach) else { return nil }
        if try await grants(-reach) { return -reach }
        var refused = -reach
        var granted = reach
        while granted - refused > 1 {
            let middle = refused + (granted - refused) / 2
            if try await grants(middle) { granted = middle } else { refused = middle }
        }
        return granted
    }

    /// What `check` says of an offset, against the lifetime of the credentials Synapse hands out.
    static func findings(offset: Int64, lifetime: Int64, uri: String, here: String) -> [Checker.Finding] {
        let fix =
            "Enable NTP on both hosts (`timedatectl set-ntp true`, then `timedatectl` shows \"System clock "
            + "synchronized: yes\") and compare `date -u` on each."
        if offset >= lifetime {
            return [
                .init(
                    ok: false,
                    summary: "coturn at \(uri) runs on a clock \(offset) s ahead of \(here): every credential Synapse "
                        + "hands out (valid \(lifetime) s) has already expired there. Calls ring and never connect.",
                    fix: "The TURN host's clock is ahead (or this one's behind). " + fix)
            ]
        }
        if offset * 2 >= lifetime || offset >= 30 {
            return [
                .init(
                    ok: false,
                    summary: "coturn at \(uri) runs on a clock \(offset) s ahead of \(here): each credential Synapse "
                        + "hands out loses \(offset) s of its \(lifetime) s there, and one used late is refused.",
                    fix: "The TURN host's clock is ahead (or this one's behind). " + fix)
            ]
        }
        if offset <= -30 {
            return [
                .init(
                    ok: true,
                    summary: "coturn at \(uri) runs on a clock \(-offset) s behind \(here): credentials stay valid "
                        + "there \(-offset) s longer, which refuses none. Enable NTP on both anyway.",
                    fix: nil)
            ]
        }
        if offset > 2 {
            return [
                .init(
                    ok: true,
                    summary: "coturn at \(uri) runs on a clock \(offset) s ahead of \(here): each credential Synapse "
                        + "hands out loses \(offset) s of its \(lifetime) s there, which refuses none used in time",
                    fix: nil)
            ]
        }
        return [
            .init(
                ok: true,
                summary: "coturn at \(uri) and \(here) agree on the time (to \(abs(offset)) s, measured by the "
                    + "earliest expiry coturn still grants); credentials are valid \(lifetime) s",
                fix: nil)
        ]
    }
}
