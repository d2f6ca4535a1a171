import TurnkeeperCore
import TurnkeeperCredentials
import TurnkeeperStores

/// Where coturn reads its secrets from, as the rotation sees it.
protocol CoturnSecrets {
    func add(_ secret: TurnSecret) async throws
    func remove(_ secret: TurnSecret) async throws
    /// The secrets coturn accepts now.
    func accepted() throws -> [TurnSecret]
}

extension CoturnSQLiteStore: CoturnSecrets {
    func accepted() throws -> [TurnSecret] { try secrets() }
}

/// turnserver.conf's lines, plus the restart that makes coturn read them (dropping live calls).
struct CoturnConfigSecrets: CoturnSecrets {
    let store: CoturnConfigStore
    /// Runs the restart command and returns once coturn answers again.
    let restart: @Sendable () async throws -> Void

    func accepted() throws -> [TurnSecret] { try store.secrets() }

    func add(_ secret: TurnSecret) async throws {
        let existing = try store.secrets()
        guard !existing.contains(secret) else { return }
        try store.setSecrets(existing + [secret])
        try await restart()
    }

    func remove(_ secret: TurnSecret) async throws {
        let existing = try store.secrets()
        guard existing.contains(secret) else { return }
        try store.setSecrets(existing.filter { $0 != secret })
        try await restart()
    }
}
