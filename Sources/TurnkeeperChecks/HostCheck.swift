import TurnkeeperConfiguration
import TurnkeeperCore
public import TurnkeeperRotation

extension Host {
    /// `turnkeeper check`: the findings, problems and passes alike. Throws only when something could not be read.
    public func check() async throws -> [Checker.Finding] {
        switch part {
        case .single(let coturn):
            try await Checker(host: self, coturn: coturn).run()
        case .turnHost(let derivation, let coturn):
            try await EpochChecker(host: self, derivation: derivation, side: .turn(coturn)).run()
        case .synapseHost(let derivation):
            try await EpochChecker(host: self, derivation: derivation, side: .synapse).run()
        }
    }
}
