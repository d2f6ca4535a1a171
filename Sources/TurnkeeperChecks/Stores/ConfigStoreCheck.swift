import Glibc
import TurnkeeperConfiguration
import TurnkeeperCore
import TurnkeeperExecution
import TurnkeeperStores

extension CoturnConfigSecrets: CoturnStoreCheck {
    /// turnserver.conf's own secrets, whether turnkeeper's unit may write the file, and a restart still owed.
    func check(_ context: StoreCheckContext, into list: inout FindingList) async throws -> StoreCheckResult? {
        let configuration = context.configuration
        let path = store.path
        let accepted = try store.secrets()
        if let blocked = await Self.unitCannotWrite(path) {
            list.problem(
                blocked,
                "Run `turnkeeper init --move-static-secret --config \(configuration.path)` (recommended: coturn "
                    + "then reads its secret from its database, and no rotation restarts it), or let the unit "
                    + "write that directory: `systemctl edit turnkeeper`, then [Service] ReadWritePaths="
                    + "\(TrustedDirectory.split(path).directory)."
            )
        }
        if access(owedMarker, F_OK) == 0 {
            list.problem(
                "a coturn restart is owed: turnkeeper changed turnserver.conf and has not yet seen coturn run with it.",
                "Check `journalctl -u coturn`, then run `\(configuration.command("rotate --resume"))`: it restarts coturn and "
                    + "proves the file is in force.")
        }
        return StoreCheckResult(accepted: accepted)
    }

    /// Why turnkeeper's systemd unit may not write `file`'s directory; nil when it may (or there is no such unit).
    static func unitCannotWrite(_ file: String) async -> String? {
        guard
            let answer = try? await CommandRunner.run(
                [
                    "systemctl", "show", "turnkeeper.service", "-p", "LoadState", "-p", "ProtectSystem", "-p",
                    "ReadWritePaths",
                ],
                what: "systemctl show", timeoutSeconds: 10, capture: true)
        else { return nil }
        var values: [Substring: Substring] = [:]
        for line in String(decoding: answer, as: UTF8.self).split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            values[line[..<equals]] = line[line.index(after: equals)...]
        }
        guard values["LoadState"] == "loaded", values["ProtectSystem"] == "strict" else { return nil }
        let directory = TrustedDirectory.split(file).directory
        let writable = (values["ReadWritePaths"] ?? "").split(separator: " ").map {
            $0.hasPrefix("-") ? String($0.dropFirst()) : String($0)
        }
        if writable.contains(where: { directory == $0 || directory.hasPrefix($0.hasSuffix("/") ? $0 : $0 + "/") }) {
            return nil
        }
        return
            "turnkeeper.service runs with ProtectSystem=strict and may not write \(directory), so with store: config "
            + "every rotation would fail to change \(file)"
    }
}
