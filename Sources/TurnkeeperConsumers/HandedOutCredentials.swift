import Foundation

/// The TURN credentials an app's answer holds: every JSON object with a `username` and a `credential` or
/// `password` (WebRTC's iceServers, Synapse's /voip/turnServer, LiveKit's ICE servers), however deep.
public enum HandedOutCredentials {
    /// At most this many bytes are read; an answer holds a few credentials.
    public static let limit = 1 << 20

    /// nil when `bytes` are not JSON; an empty list when they hold no credential.
    public static func parse(_ bytes: [UInt8]) -> [(username: String, password: String)]? {
        guard bytes.count <= limit,
            let root = try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])
        else { return nil }
        var found: [(String, String)] = []
        var stack: [Any] = [root]
        // Iterative, and bounded by the input's size: no answer can nest deeply enough to overflow the stack.
        while let node = stack.popLast(), found.count < 64 {
            if let object = node as? [String: Any] {
                if let user = object["username"] as? String,
                    let password = (object["credential"] as? String) ?? (object["password"] as? String)
                {
                    found.append((user, password))
                }
                stack += object.values
            } else if let array = node as? [Any] {
                stack += array
            }
        }
        return found
    }
}
