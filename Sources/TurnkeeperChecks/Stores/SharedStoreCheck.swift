import TurnkeeperConfiguration
import TurnkeeperCore
import TurnkeeperCredentials
import TurnkeeperStores

// A shared user database (Redis, PostgreSQL) that is down fails every login on every coturn host: check says
// so plainly, and says when its password and secrets cross a network unencrypted.

extension CoturnRedisStore: CoturnStoreCheck {
    func check(_ context: StoreCheckContext, into list: inout FindingList) async throws -> StoreCheckResult? {
        var transport: [Checker.Finding] = []
        if !Configuration.isLoopback(endpoint.host) {
            transport.append(
                Checker.Finding(
                    ok: false,
                    summary: "coturn's Redis at \(endpoint.host) is not on this machine's loopback, and Redis is "
                        + "reached without TLS: the password and every secret cross the network unencrypted. coturn "
                        + "4.6.1 cannot use TLS to Redis either (its redis-userdb has no TLS options).",
                    fix: "Keep Redis on a private network you trust, or carry it over a tunnel (stunnel, spiped, "
                        + "WireGuard) and point coturn and turnkeeper at the tunnel's loopback end."))
        }
        return try await checkShared(context, transport: transport, into: &list)
    }
}

extension CoturnPostgresStore: CoturnStoreCheck {
    func check(_ context: StoreCheckContext, into list: inout FindingList) async throws -> StoreCheckResult? {
        var transport: [Checker.Finding] = []
        if !endpoint.tls && !Configuration.isLoopback(endpoint.host) {
            transport.append(
                Checker.Finding(
                    ok: false,
                    summary: "coturn.postgres.tls is false, but \(endpoint.host) is not this machine's loopback: "
                        + "turnkeeper's password and every secret it writes cross the network unencrypted.",
                    fix: "Set tls: true (and ca_file: if a private CA signed the server's certificate), with "
                        + "`ssl = on` in postgresql.conf; or reach it over a tunnel (WireGuard, SSH) and name the "
                        + "tunnel's loopback end."))
        }
        return try await checkShared(context, transport: transport, into: &list)
    }
}

extension CoturnSecretStore {
    /// Whether the database answers, how it is reached, and whether turnkeeper may write it.
    fileprivate func checkShared(
        _ context: StoreCheckContext, transport: [Checker.Finding], into list: inout FindingList
    ) async throws -> StoreCheckResult? {
        let configuration = context.configuration
        let accepted: [TurnSecret]
        do {
            accepted = try await secrets()
        } catch {
            let refused = (error as? TurnkeeperError)?.code == .storeRefused
            list.problem(
                (error as? TurnkeeperError)?.reason ?? "\(error)",
                refused
                    ? "Fix turnkeeper's login or grants as the message says (coturn.\(configuration.coturn.store.name) "
                        + "in \(configuration.path)); the database itself answers."
                    : "Start the database, and run it highly available (replicas with failover).")
            return nil
        }
        let kind = configuration.coturn.store.label
        list.ok(
            "coturn's \(kind) user database answers (\(accepted.count) secret(s) under realm "
                + "\(configuration.coturn.realm))")
        list += transport
        do {
            try await proveWritable()
            list.ok("turnkeeper may add and remove secrets in coturn's \(kind) user database")
        } catch {
            list.problem(
                (error as? TurnkeeperError)?.reason ?? "\(error)",
                "Grant turnkeeper's user write access as the message says; give coturn a read-only user of its own.")
        }
        return StoreCheckResult(accepted: accepted)
    }
}
