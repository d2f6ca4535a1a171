import TurnkeeperProbe
public import TurnkeeperTURNClient

/// What `turnkeeper load` is given.
public struct LoadOptions: Sendable {
    /// A credential per call (minted for its own user, so that a per-user quota meets one call's two
    /// allocations), or the same one for every call.
    public var credentials: @Sendable (Int) -> TURNCredentials
    /// True when every call presents the same username: `user-quota` then counts them all together.
    public var sharedCredentials: Bool
    public var tls: TLSOptions
    /// The number of calls at each step.
    public var steps: [Int]
    public var stepDuration: Duration
    public var profile: LoadProfile
    public var thresholds: LoadThresholds
    public var coturnPID: Int32?
    /// How long a call may take to come up, connects included; also each refresh's deadline.
    public var setupTimeout: Duration
    /// How often a call renews its permissions (RFC 8656: they last 5 minutes) and its channel bindings (10
    /// minutes), as browsers do. Allocations are refreshed a minute before the lifetime the server granted.
    public var permissionRefresh: Duration
    public var channelRefresh: Duration
    /// How long after a window closes its last packets may still arrive before they count as lost.
    public var grace: Duration

    public init(
        credentials: @escaping @Sendable (Int) -> TURNCredentials, sharedCredentials: Bool = false,
        tls: TLSOptions = TLSOptions(), steps: [Int], stepDuration: Duration, profile: LoadProfile = .voice,
        thresholds: LoadThresholds = LoadThresholds(), coturnPID: Int32? = nil, setupTimeout: Duration = .seconds(5),
        permissionRefresh: Duration = .seconds(240), channelRefresh: Duration = .seconds(540),
        grace: Duration = .milliseconds(500)
    ) {
        self.credentials = credentials
        self.sharedCredentials = sharedCredentials
        self.tls = tls
        self.steps = steps
        self.stepDuration = stepDuration
        self.profile = profile
        self.thresholds = thresholds
        self.coturnPID = coturnPID
        self.setupTimeout = setupTimeout
        self.permissionRefresh = permissionRefresh
        self.channelRefresh = channelRefresh
        self.grace = grace
    }
}
