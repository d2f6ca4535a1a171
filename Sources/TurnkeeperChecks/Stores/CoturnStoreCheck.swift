import TurnkeeperConfiguration
import TurnkeeperCredentials
import TurnkeeperRotation
import TurnkeeperStores

/// What one kind of coturn store adds to `check`: its own health, and the secrets coturn accepts through it.
/// Each store kind conforms in its own file, so ``Checker`` never asks which kind it holds.
protocol CoturnStoreCheck: CoturnSecretStore {
    /// The secrets coturn accepts, with findings about the store on the way; nil when the store does not
    /// answer (a finding says so, and the checks that need its secrets are skipped).
    func check(_ context: StoreCheckContext, into list: inout FindingList) async throws -> StoreCheckResult?
}

/// What a store's check needs to know of the rest of the host.
struct StoreCheckContext {
    let configuration: Configuration
    /// The secret Synapse signs with.
    let secret: TurnSecret
    let conf: TurnserverConf?
    /// turnserver.conf's realm= and its line, when it sets one.
    let coturnRealm: (value: String, line: Int)?

    /// The realm coturn reads database rows under: its own when known, else the one turnkeeper is told.
    var readRealm: String { coturnRealm?.value ?? configuration.coturn.realm }
}

struct StoreCheckResult {
    var accepted: [TurnSecret]
    /// Another realm whose rows hold Synapse's secret.
    var heldUnder: String?
}

extension CoturnSecretStore {
    /// The store's own check, or (a store without one, such as a test's) only its secrets.
    func checked(_ context: StoreCheckContext, into list: inout FindingList) async throws -> StoreCheckResult? {
        if let store = self as? any CoturnStoreCheck {
            return try await store.check(context, into: &list)
        }
        return StoreCheckResult(accepted: try await secrets())
    }
}
