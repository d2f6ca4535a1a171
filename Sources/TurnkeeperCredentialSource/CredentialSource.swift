import NIOPosix
public import TurnkeeperCore
public import TurnkeeperCredentials
import TurnkeeperSynapse
public import TurnkeeperTURNClient

/// Where TURN credentials come from, for `probe`, `call` and the daemon's probe: one place that reads a
/// secret file, Synapse's config or its /voip/turnServer, or a credential a client got, and mints or
/// returns what a TURN client presents.
public enum CredentialSource: Sendable {
    /// None: only a STUN Binding can be tested.
    case none
    /// A secret already at hand (the daemon's current secret): minted as Synapse mints.
    case secret(TurnSecret)
    /// A file holding the shared secret: minted as Synapse mints.
    case secretFile(String)
    /// Synapse's own config files or directories: its secret, its turn_user_lifetime, its turn_uris.
    case synapseConfig([String])
    /// Synapse's /voip/turnServer, asked with the access token in `accessTokenFile` as a Matrix client asks.
    case homeserver(String, accessTokenFile: String, caFile: String?)
    /// A credential a client got: its username, and a file holding its password.
    case credential(username: String, passwordFile: String)

    /// What a source yields.
    public struct Resolved: Sendable {
        public var credentials: TURNCredentials?
        /// When the credentials expire, in Unix seconds, when that is known.
        public var expiry: Int64?
        /// The URIs the source lists (Synapse's turn_uris, or those /voip/turnServer hands out); else empty.
        public var uris: [String]
        /// For people, never holding a secret: a secret file others can read, a username coturn would refuse.
        public var warnings: [String]

        public init(
            credentials: TURNCredentials? = nil, expiry: Int64? = nil, uris: [String] = [], warnings: [String] = []
        ) {
            self.credentials = credentials
            self.expiry = expiry
            self.uris = uris
            self.warnings = warnings
        }
    }

    /// What a minting source holds: the secret, the lifetime it sets (Synapse's config; else nil), the URIs it
    /// lists and warnings for people.
    struct Minting {
        var secret: TurnSecret
        var lifetime: SynapseDuration?
        var uris: [String] = []
        var warnings: [String] = []
    }

    /// The secret behind a source that mints (a secret, a secret file, Synapse's config); nil for the others.
    func minting() async throws -> Minting? {
        switch self {
        case .none, .homeserver, .credential:
            return nil
        case .secret(let secret):
            return Minting(secret: secret)
        case .secretFile(let path):
            let loaded = try SecretFile.read(path)
            return Minting(secret: loaded.secret, warnings: loaded.warnings)
        case .synapseConfig(let paths):
            // Reading Synapse's files blocks: off the cooperative pool.
            let config = try await NIOThreadPool.singleton.runIfActive { try SynapseConfig.load(paths) }
            guard let secret = config.turnSecret else {
                throw TurnkeeperError(
                    .checkFailed,
                    "Synapse's config (\(config.files.joined(separator: ", "))) sets no turn_shared_secret or "
                        + "turn_shared_secret_path, so Synapse hands out no TURN credentials."
                )
            }
            return Minting(
                secret: secret, lifetime: config.turnUserLifetime, uris: config.turnURIs, warnings: config.warnings)
        }
    }

    /// Reads the source. A secret is minted for `user` with `lifetime` from `nowMilliseconds`, except that
    /// Synapse's config sets its own lifetime. Errors say which file or server and what to do.
    public func resolve(
        user: String, lifetime: SynapseDuration, nowMilliseconds: Int64 = WallClock.nowMilliseconds()
    ) async throws -> Resolved {
        if let minting = try await minting() {
            let minted = try CredentialMinter(secret: minting.secret)
                .credential(user: user, lifetime: minting.lifetime ?? lifetime, nowMilliseconds: nowMilliseconds)
            return Resolved(
                credentials: TURNCredentials(username: minted.username, password: minted.password),
                expiry: minted.expiry, uris: minting.uris, warnings: minting.warnings)
        }
        switch self {
        case .none, .secret, .secretFile, .synapseConfig:
            return Resolved()
        case .homeserver(let homeserver, let accessTokenFile, let caFile):
            let token = try FileContents.readValue(accessTokenFile, what: "a Matrix access token")
            switch try await TurnServerClient.fetch(homeserver: homeserver, accessToken: token, caFile: caFile) {
            case .empty:
                throw TurnkeeperError(
                    .checkFailed,
                    "\(homeserver) hands out no TURN credentials (/voip/turnServer answered {}): Synapse has no "
                        + "turn_uris, an empty secret (or secret file), or turn_user_lifetime 0. Run "
                        + "`turnkeeper probe --synapse-config` on the Synapse host to see which."
                )
            case .credentials(let answer):
                return Resolved(
                    credentials: TURNCredentials(username: answer.username, password: answer.password),
                    expiry: RESTUsername.expiry(of: answer.username), uris: answer.uris)
            }
        case .credential(let username, let passwordFile):
            let warnings = RESTUsername.problem(username: username).map { ["--username \($0)."] } ?? []
            let password = try FileContents.readValue(passwordFile, what: "the TURN password")
            let expiry = username.contains(":") ? RESTUsername.expiry(of: username) : nil
            return Resolved(
                credentials: TURNCredentials(username: username, password: password), expiry: expiry,
                warnings: warnings)
        }
    }

    /// Credentials for many users at once (a load run's calls). A source that mints gives each user their own,
    /// valid for `lifetime` (what the run needs, whatever Synapse hands out), reading the secret once; any other
    /// gives its one credential to all, with `perUser` false and its own `expiry` (Unix seconds, when known).
    public func resolve(
        users: [String], lifetime: SynapseDuration, nowMilliseconds: Int64 = WallClock.nowMilliseconds()
    ) async throws -> (credentials: [TURNCredentials], perUser: Bool, expiry: Int64?, warnings: [String]) {
        if let minting = try await minting() {
            let minter = try CredentialMinter(secret: minting.secret)
            var expiry: Int64?
            let credentials = users.map { user in
                let minted = minter.credential(user: user, lifetime: lifetime, nowMilliseconds: nowMilliseconds)
                expiry = minted.expiry
                return TURNCredentials(username: minted.username, password: minted.password)
            }
            return (credentials, true, expiry, minting.warnings)
        }
        let one = try await resolve(user: users.first ?? "", lifetime: lifetime, nowMilliseconds: nowMilliseconds)
        guard let credentials = one.credentials else { return ([], false, nil, one.warnings) }
        return (Array(repeating: credentials, count: users.count), false, one.expiry, one.warnings)
    }
}
