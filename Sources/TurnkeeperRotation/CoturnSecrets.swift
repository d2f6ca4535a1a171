import TurnkeeperCore
import TurnkeeperCredentials
import TurnkeeperStores

/// Where coturn reads its secrets from, as the rotation sees it.
protocol CoturnSecrets {
    func contains(_ secret: TurnSecret) throws(TurnkeeperError) -> Bool
    func add(_ secret: TurnSecret) throws(TurnkeeperError)
    func remove(_ secret: TurnSecret) throws(TurnkeeperError)
}

extension CoturnSQLiteStore: CoturnSecrets {
    func contains(_ secret: TurnSecret) throws(TurnkeeperError) -> Bool { try secrets().contains(secret) }
}

/// turnserver.conf's lines, plus the restart that makes coturn read them (dropping live calls).
struct CoturnConfigSecrets: CoturnSecrets {
    let store: CoturnConfigStore
    let restart: (() throws(TurnkeeperError) -> Void)

    func contains(_ secret: TurnSecret) throws(TurnkeeperError) -> Bool { try store.secrets().contains(secret) }

    func add(_ secret: TurnSecret) throws(TurnkeeperError) {
        let existing = try store.secrets()
        guard !existing.contains(secret) else { return }
        try store.setSecrets(existing + [secret])
        try restart()
    }

    func remove(_ secret: TurnSecret) throws(TurnkeeperError) {
        let existing = try store.secrets()
        guard existing.contains(secret) else { return }
        try store.setSecrets(existing.filter { $0 != secret })
        try restart()
    }
}
