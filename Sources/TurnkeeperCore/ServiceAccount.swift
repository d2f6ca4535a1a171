import Glibc

/// A system account a secret is written for (Synapse's `matrix-synapse`): it may own directories on the way to
/// that secret's file, as Debian's packages set them up, since it could only ever reach its own secret.
public struct ServiceAccount: Sendable, Equatable {
    public let name: String
    public let uid: UInt32

    public init(name: String, uid: UInt32) {
        self.name = name
        self.uid = uid
    }

    /// The account named `name`, or nil when there is none on this host, or it is one no secret may be trusted
    /// to: root (who needs no leave), Debian's static system accounts below uid 100 (daemon, bin, …) and
    /// nobody, which many services share.
    public static func lookup(_ name: String) -> ServiceAccount? {
        guard let (uid, _) = ids(of: name), uid >= 100, uid != 65534 else { return nil }
        return ServiceAccount(name: name, uid: uid)
    }

    /// The user id and primary group id of `user` (reentrant: lookups run on the thread pool).
    static func ids(of user: String) -> (uid: UInt32, gid: UInt32)? {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16384)
        guard getpwnam_r(user, &entry, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
        return (entry.pw_uid, entry.pw_gid)
    }

    /// "matrix-synapse (uid 102)", or "uid 102" for an id with no name.
    public static func describe(uid: UInt32) -> String {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16384)
        guard getpwuid_r(uid, &entry, &buffer, buffer.count, &result) == 0, result != nil, let name = entry.pw_name
        else { return "uid \(uid)" }
        return "\(String(cString: name)) (uid \(uid))"
    }
}
