import Glibc

/// A group's id from its name or number, looked up with the reentrant `getgrnam_r`: lookups run on the thread
/// pool, where `getgrnam`'s shared buffer could hand one thread another's answer (and a secret file the wrong
/// group).
public enum GroupID {
    /// nil when no such group exists.
    public static func lookup(_ group: String) -> UInt32? {
        if let numeric = UInt32(group) { return numeric }
        var entry = group_t()
        var result: UnsafeMutablePointer<group_t>?
        var size = 4096
        while size <= 1 << 20 {
            var buffer = [CChar](repeating: 0, count: size)
            let status = getgrnam_r(group, &entry, &buffer, size, &result)
            if status == ERANGE {
                size *= 4
                continue
            }
            guard status == 0, result != nil else { return nil }
            return entry.gr_gid
        }
        return nil
    }

    /// Groups that many services share: a secret file readable by one is readable by all of them.
    public static let shared: Set<String> = ["nogroup", "nobody", "users", "staff", "daemon", "adm"]

    /// Why `group` must not be given a secret file to read (a group other services share, by name or by id),
    /// naming the primary group of `user` when it has one of its own; nil when it may.
    public static func sharedGroupProblem(_ group: String, user: String) -> String? {
        let gid = lookup(group)
        let sharedIDs = Set(shared.compactMap { lookup($0) })
        guard shared.contains(group) || gid.map({ sharedIDs.contains($0) && $0 != 0 }) == true else { return nil }
        let primary = primaryGroup(of: user)
        let own = primary.map { name in
            shared.contains(name)
                ? "\(user)'s primary group is \(name), shared too" : "\(user)'s primary group is \(name)"
        }
        return "the group \(group) is shared by other services, so every process in it could read the TURN secret"
            + (own.map { " (\($0))" } ?? "")
    }

    /// The name of `user`'s primary group, or nil when there is no such user.
    public static func primaryGroup(of user: String) -> String? {
        guard let (_, gid) = ServiceAccount.ids(of: user) else { return nil }
        var group = group_t()
        var found: UnsafeMutablePointer<group_t>?
        var groupBuffer = [CChar](repeating: 0, count: 16384)
        guard getgrgid_r(gid, &group, &groupBuffer, groupBuffer.count, &found) == 0, found != nil,
            let name = group.gr_name
        else { return nil }
        return String(cString: name)
    }

    /// The id, or an error naming what to set.
    public static func require(_ group: String, runsAs service: String) throws(TurnkeeperError) -> UInt32 {
        guard let gid = lookup(group) else {
            throw TurnkeeperError(
                .invalidConfiguration,
                "the group \(group) does not exist on this host. Name the group \(service) runs as.")
        }
        return gid
    }
}

private typealias group_t = group
