import TurnkeeperConfiguration
import TurnkeeperCore
import TurnkeeperStores

extension CoturnSQLiteStore: CoturnStoreCheck {
    /// Reads under coturn's own realm, says whether coturn's logins can meet turnkeeper's writes, and finds rows
    /// under realms coturn never reads.
    func check(_ context: StoreCheckContext, into list: inout FindingList) async throws -> StoreCheckResult? {
        let configuration = context.configuration
        let realm = configuration.coturn.realm
        let read = CoturnSQLiteStore(path: path, realm: context.readRealm)
        var result = StoreCheckResult(accepted: try await read.secrets())
        // coturn reads without waiting for a lock: only WAL keeps turnkeeper's writes from refusing logins.
        if let mode = try? await read.journalMode() {
            list.ok(
                mode.lowercased() == "wal"
                    ? "coturn's database \(path) is in WAL mode: coturn's logins never wait for turnkeeper's writes"
                    : "coturn's database \(path) uses the rollback journal (\(mode)): turnkeeper's first write "
                        + "switches it to WAL, and a login meeting that instant may be refused (3 in 100 switches "
                        + "measured). To avoid even that, switch it while coturn is stopped (docs/rotation.md)")
        }
        for other in try await read.realmsWithSecrets() where other != context.readRealm {
            if try await CoturnSQLiteStore(path: path, realm: other).secrets().contains(context.secret) {
                result.heldUnder = other
            }
            if let coturnRealm = context.coturnRealm, let conf = context.conf {
                list.problem(
                    "coturn's database holds secrets under realm \"\(ServerText.escaped(other))\", which coturn never reads: its realm is "
                        + "\"\(ServerText.escaped(coturnRealm.value))\" (\(conf.path), line \(coturnRealm.line)).",
                    other == realm
                        ? "These rows are turnkeeper's (coturn.realm \"\(realm)\"): set coturn.realm: "
                            + "\(ServerText.escaped(coturnRealm.value)) in \(configuration.path), then run check again."
                        : "Remove those rows if nothing uses them."
                )
            } else {
                list.problem(
                    "coturn's database holds secrets under realm \"\(ServerText.escaped(other))\", but turnkeeper's coturn.realm is "
                        + "\"\(realm)\"; coturn reads only the rows of its own realm= ("
                        + (context.conf.map { "\($0.path) sets no realm=" } ?? "no turnserver.conf was found")
                        + " to tell which that is).",
                    "Set coturn.realm in \(configuration.path) to coturn's realm= (and coturn.config_file, so check "
                        + "can compare them), or remove the rows of the realm coturn does not use."
                )
            }
        }
        return result
    }
}
