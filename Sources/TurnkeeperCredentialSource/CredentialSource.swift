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

    /// Reads the source. A secret is minted for `user` with `lifetime` from `nowMilliseconds`, except that
    /// Synapse's config sets its own lifetime. Errors say which file or server and what to do.
    public func resolve(
        user: String, lifetime: SynapseDuration, nowMilliseconds: Int64 = WallClock.nowMilliseconds()
    ) async throws -> Resolved {
        func mint(_ secret: TurnSecret, _ lifetime: SynapseDuration) throws -> (TURNCredentials, Int64) {
            let minted = try CredentialMinter(secret: secret)
                .credential(user: user, lifetime: lifetime, nowMilliseconds: nowMilliseconds)
            return (TURNCredentials(username: minted.username, password: minted.password), minted.expiry)
        }
        switch self {
        case .none:
            return Resolved()
        case .secret(let secret):
            let (credentials, expiry) = try mint(secret, lifetime)
            return Resolved(credentials: credentials, expiry: expiry)
        case .secretFile(let path):
            let loaded = try SecretFile.read(path)
            let (credentials, expiry) = try mint(loaded.secret, lifetime)
            return Resolved(credentials: credentials, expiry: expiry, warnings: loaded.warnings)
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
            let (credentials, expiry) = try mint(secret, config.turnUserLifetime)
            return Resolved(credentials: credentials, expiry: expiry, uris: config.turnURIs, warnings: config.warnings)
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
}
