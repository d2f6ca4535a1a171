import Glibc
public import TurnkeeperCore
import TurnkeeperCredentials
import TurnkeeperCrypto
import TurnkeeperStores
public import TurnkeeperSynapse

/// What `turnkeeper init` reads on this host, as it is: Synapse's configuration (Debian's layout),
/// coturn's turnserver.conf, Prosody's TURN options, and which systemd units exist. Reading only; what to
/// make of it is ``SetupPlan``'s business.
public struct HostSurvey: Sendable {
    /// Where to look. The defaults are Debian's layout.
    public struct Paths: Sendable {
        public var synapseConfig: [String]
        public var turnserverConf: String
        /// Prosody's main file; `conf.d/*.cfg.lua` beside it is read too.
        public var prosodyConfig: String
        /// Directories holding systemd units.
        public var unitDirectories: [String]

        public init(
            synapseConfig: [String] = ["/etc/matrix-synapse/homeserver.yaml", "/etc/matrix-synapse/conf.d"],
            turnserverConf: String = "/etc/turnserver.conf",
            prosodyConfig: String = "/etc/prosody/prosody.cfg.lua",
            unitDirectories: [String] = ["/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system"]
        ) {
            self.synapseConfig = synapseConfig
            self.turnserverConf = turnserverConf
            self.prosodyConfig = prosodyConfig
            self.unitDirectories = unitDirectories
        }
    }

    /// coturn's options that matter to turnkeeper, from turnserver.conf.
    public struct Coturn: Sendable {
        public var path: String
        public var realm: String?
        public var useAuthSecret: Bool
        /// Line numbers of `static-auth-secret` lines (their values are never kept here).
        public var staticSecretLines: [Int]
        /// `userdb=` (SQLite), or nil for Debian's default database.
        public var sqliteDatabase: String?
        /// `psql-userdb`, `redis-userdb`, `mysql-userdb`, `mongo-userdb`: the option's name.
        public var sharedDatabase: String?
        public var listeningPort: Int
        public var listeningIPs: [String]
        public var noUDP: Bool
        public var noTCP: Bool
    }

    /// A TURN secret Prosody's files set: `turn_external_secret` (mod_turn_external), `external_service_secret`
    /// (mod_external_services, as Jitsi Meet configures it) or `turncredentials_secret` (mod_turncredentials).
    public struct ProsodyTURN: Sendable {
        public var file: String
        public var line: Int
        public var option: String
        /// Whether it is the secret Synapse uses (only when the value is a plain Lua string).
        public var matchesSynapse: Bool?
    }

    public var paths: Paths
    /// Synapse's configuration, or why it could not be read.
    public var synapse: Result<SynapseConfig, TurnkeeperError>
    /// The group owning Synapse's first file, when not root's.
    public var synapseFileGroup: String?
    /// nil: no turnserver.conf here (coturn runs elsewhere, or not at all).
    public var coturn: Result<Coturn, TurnkeeperError>?
    public var prosody: [ProsodyTURN]
    /// Unit names found, such as "matrix-synapse.service".
    public var units: Set<String>

    public static func read(_ paths: Paths = Paths()) -> HostSurvey {
        let synapse = Result { () throws(TurnkeeperError) -> SynapseConfig in
            try SynapseConfig.load(paths.synapseConfig)
        }
        var units = Set<String>()
        for directory in paths.unitDirectories {
            for unit in ["matrix-synapse.service", "coturn.service", "prosody.service"]
            where access(directory + "/" + unit, F_OK) == 0 {
                units.insert(unit)
            }
        }
        let coturn: Result<Coturn, TurnkeeperError>? =
            access(paths.turnserverConf, F_OK) == 0
            ? Result { () throws(TurnkeeperError) in try readCoturn(paths.turnserverConf) } : nil
        let secret = try? synapse.get().turnSecret
        return HostSurvey(
            paths: paths, synapse: synapse, synapseFileGroup: paths.synapseConfig.first.flatMap(groupName(of:)),
            coturn: coturn, prosody: readProsody(paths.prosodyConfig, synapseSecret: secret), units: units)
    }

    /// turnserver.conf as coturn reads it: `name=value` or bare flags; the last value of an option wins.
    public static func readCoturn(_ path: String) throws(TurnkeeperError) -> Coturn {
        let lines = CoturnConfigStore.parse(try FileContents.read(path, limit: 1 << 20).bytes)
        var coturn = Coturn(
            path: path, realm: nil, useAuthSecret: false, staticSecretLines: [], sqliteDatabase: nil,
            sharedDatabase: nil, listeningPort: 3478, listeningIPs: [], noUDP: false, noTCP: false)
        for line in lines {
            guard let name = line.name else { continue }
            switch name {
            case "realm": coturn.realm = line.text
            case "use-auth-secret": coturn.useAuthSecret = true
            case "static-auth-secret": coturn.staticSecretLines.append(line.number)
            case "userdb", "db": coturn.sqliteDatabase = line.text
            case "psql-userdb", "sql-userdb", "redis-userdb", "mysql-userdb", "mongo-userdb":
                coturn.sharedDatabase = name
            case "listening-port", "port":
                if let text = line.text, let port = Int(text), (1...65535).contains(port) {
                    coturn.listeningPort = port
                }
            case "listening-ip", "L":
                if let text = line.text { coturn.listeningIPs.append(text) }
            case "no-udp": coturn.noUDP = true
            case "no-tcp": coturn.noTCP = true
            default: continue
            }
        }
        return coturn
    }

    static let prosodyOptions = ["turn_external_secret", "external_service_secret", "turncredentials_secret"]

    /// `<option> = "…"` lines in Prosody's main file and its conf.d. Values are compared, never kept.
    static func readProsody(_ path: String, synapseSecret: TurnSecret?) -> [ProsodyTURN] {
        var files = [path]
        let confD = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)]) + "/conf.d"
        if let directory = opendir(confD) {
            defer { closedir(directory) }
            var names: [String] = []
            while let entry = readdir(directory) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) {
                    String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
                }
                if name.hasSuffix(".cfg.lua") { names.append(name) }
            }
            files += names.sorted().map { confD + "/" + $0 }
        }
        var found: [ProsodyTURN] = []
        for file in files {
            guard let contents = try? FileContents.read(file, limit: 1 << 20) else { continue }
            for (index, line) in contents.bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
                .enumerated()
            {
                let text = String(decoding: line, as: UTF8.self).drop { $0 == " " || $0 == "\t" }
                guard let option = prosodyOptions.first(where: { text.hasPrefix($0) }) else { continue }
                let rest = text.dropFirst(option.count).drop { $0 == " " || $0 == "\t" }
                guard rest.first == "=" else { continue }
                let value = rest.dropFirst().drop { $0 == " " || $0 == "\t" }
                var matches: Bool?
                if let quote = value.first, quote == "\"" || quote == "'",
                    let end = value.dropFirst().firstIndex(of: quote),
                    let synapseSecret
                {
                    let literal = value[value.index(after: value.startIndex)..<end]
                    matches =
                        !literal.contains("\\")
                        ? synapseSecret.withExposedBytes { ConstantTime.equals(Array(literal.utf8), $0) } : nil
                }
                // A literal followed by more (`"a" .. "b"`) is not the whole value; a comment after it is fine.
                if matches != nil, let end = value.dropFirst().firstIndex(of: value.first!) {
                    let tail = value[value.index(after: end)...].drop { " \t\r;".contains($0) }
                    if !tail.isEmpty && !tail.hasPrefix("--") { matches = nil }
                }
                found.append(ProsodyTURN(file: file, line: index + 1, option: option, matchesSynapse: matches))
            }
        }
        return found
    }

    private static func groupName(of path: String) -> String? {
        var info = stat()
        guard stat(path, &info) == 0, info.st_gid != 0 else { return nil }
        var entry = group()
        var result: UnsafeMutablePointer<group>?
        var buffer = [CChar](repeating: 0, count: 1 << 16)
        guard getgrgid_r(info.st_gid, &entry, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
        return String(cString: entry.gr_name)
    }
}
