public import TurnkeeperCredentials

/// Where coturn reads the shared secrets it accepts: its SQLite database, a shared Redis or PostgreSQL user
/// database, or turnserver.conf. One contract for all of them, so the rotation never knows which.
///
/// Every method may wait on a disk, a lock or a network, so every one is async; none blocks a thread of the
/// cooperative pool (blocking work runs on ``Blocking``).
public protocol CoturnSecretStore: Sendable {
    /// The secrets coturn accepts now (for turnserver.conf: after its next start), in no particular order.
    func secrets() async throws -> [TurnSecret]
    /// Adds `secret`; adding one already there changes nothing.
    func add(_ secret: TurnSecret) async throws
    /// Removes `secret`; removing one that is not there changes nothing.
    func remove(_ secret: TurnSecret) async throws
    /// Proves, without touching any secret, that turnkeeper may add and remove them (`check`); throws
    /// `storeRefused` when it may only read.
    func proveWritable() async throws
}

extension CoturnSecretStore {
    /// Stores whose write access `check` proves otherwise (files: their permissions).
    public func proveWritable() async throws {}
}
