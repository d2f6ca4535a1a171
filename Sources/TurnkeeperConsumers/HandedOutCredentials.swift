import TurnkeeperCore

/// The TURN credentials an app's answer holds: every JSON object with a `username` and a `credential` or
/// `password` (WebRTC's iceServers, Synapse's /voip/turnServer, LiveKit's ICE servers), however deep.
public enum HandedOutCredentials {
    /// At most this many bytes are read; an answer holds a few credentials.
    public static let limit = 1 << 20

    /// nil when `bytes` are not JSON; an empty list when they hold no credential.
    public static func parse(_ bytes: [UInt8]) -> [(username: String, password: String)]? {
        guard bytes.count <= limit, let root = JSONValue.parse(bytes) else { return nil }
        var found: [(String, String)] = []
        var stack: [JSONValue] = [root]
        // Iterative: however deep the answer nests, the walk uses no stack.
        while let node = stack.popLast(), found.count < 64 {
            switch node {
            case .object(let members):
                if let user = members["username"]?.string,
                    let password = members["credential"]?.string ?? members["password"]?.string
                {
                    found.append((user, password))
                }
                stack += members.values
            case .array(let elements):
                stack += elements
            default:
                continue
            }
        }
        return found
    }
}
