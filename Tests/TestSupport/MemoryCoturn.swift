import Synchronization
public import TurnkeeperCredentials
public import TurnkeeperStores

/// A coturn store in memory, for a `Host` built with `Host(_:coturnStore:probe:)`.
public final class MemoryStore: CoturnSecretStore {
    private let rows = Mutex<[TurnSecret]>([])

    public init() {}

    public var holds: [TurnSecret] { rows.withLock { $0 } }

    public func secrets() async throws -> [TurnSecret] { holds }

    public func add(_ secret: TurnSecret) async throws {
        rows.withLock { if !$0.contains(secret) { $0.append(secret) } }
    }

    public func remove(_ secret: TurnSecret) async throws { rows.withLock { $0.removeAll { $0 == secret } } }

    public func holdsInitially(_ secret: TurnSecret) { rows.withLock { $0 = [secret] } }

    public func empty() { rows.withLock { $0 = [] } }
}

/// Judges credentials as coturn does: valid when signed with a secret the store holds and not expired.
public final class MemoryProbe: CoturnProbe {
    public let uri = "turn:memory.test"
    public let store: MemoryStore
    public let clock: ManualClock
    public let refuseAll = Atomic<Bool>(false)

    public init(store: MemoryStore, clock: ManualClock) {
        self.store = store
        self.clock = clock
    }

    public func grants(username: String, password: String) async throws -> Bool {
        guard !refuseAll.load(ordering: .relaxed) else { return false }
        let verdict = try CredentialVerifier(secrets: store.holds).verify(
            username: username, password: password, nowSeconds: clock.now())
        if case .valid = verdict { return true }
        return false
    }
}

/// Unix seconds that move only when a test moves them.
public final class ManualClock: Sendable {
    private let seconds = Atomic<Int64>(1_800_000_000)

    public init() {}

    public func now() -> Int64 { seconds.load(ordering: .relaxed) }

    public func advance(by delta: Int64) { seconds.add(delta, ordering: .relaxed) }

    public func set(to value: Int64) { seconds.store(value, ordering: .relaxed) }
}
