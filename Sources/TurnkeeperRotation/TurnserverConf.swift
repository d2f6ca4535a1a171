package import TurnkeeperConfiguration
package import TurnkeeperCore
package import TurnkeeperCredentials
package import TurnkeeperStores

/// turnserver.conf as coturn reads it, for `check` on the hosts where coturn runs.
package struct TurnserverConf {
    package let path: String
    /// True when coturn.config_file names it; false for the default, read only for its secrets and realm.
    package let configured: Bool
    package let lines: [CoturnConfigStore.Line]
    package let secrets: [(line: Int, secret: TurnSecret)]
    /// The last realm= line, which is the one coturn keeps.
    package let realm: (value: String, line: Int)?

    /// nil when coturn.config_file is unset and the default file does not exist.
    package static func read(_ configuration: Configuration) throws(TurnkeeperError) -> TurnserverConf? {
        guard let (path, configured) = configuration.turnserverConf else { return nil }
        let lines = CoturnConfigStore.parse(try FileContents.read(path, limit: 1 << 20).bytes)
        let realm = lines.last { $0.name == "realm" && $0.value != nil }
        return TurnserverConf(
            path: path, configured: configured, lines: lines,
            secrets: try CoturnConfigStore.secretLines(in: lines, path: path),
            realm: realm.map { ($0.text ?? String(decoding: $0.value ?? [], as: UTF8.self), $0.number) })
    }
}
