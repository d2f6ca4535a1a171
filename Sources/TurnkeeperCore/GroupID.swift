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
