import Glibc

/// A directory turnkeeper reads and replaces files in, opened once and used through its descriptor.
///
/// turnkeeper runs as root. Were any directory on the way to a file it writes writable by another user, that
/// user could swap a symbolic link in between a check and a rename and have root overwrite any file. So the
/// directory is reached from / one component at a time, each opened with `openat` and `O_NOFOLLOW` from the one
/// before and checked on its descriptor: owned by root (or by us) and writable by no one else (a sticky
/// directory such as /tmp may lie on the way, not at the end). Each file in it is then opened with `openat` and
/// `O_NOFOLLOW` and replaced with `renameat`, never through a path again.
///
/// One more account may own directories and files on the way: the service a secret is written for (Debian's
/// Synapse package gives /etc/matrix-synapse to matrix-synapse). It could swap a directory, never redirect the
/// walk (no link is followed), and it would only ever receive its own secret.
public struct TrustedDirectory: ~Copyable {
    /// The directory as it was named.
    public let path: String
    public let fd: Int32
    /// The service account that may own directories on the way and files in it, besides root.
    public let service: ServiceAccount?

    /// Opens the directory that holds `file`.
    public init(containing file: String, service: ServiceAccount? = nil) throws(TurnkeeperError) {
        try self.init(Self.split(file).directory, for: file, service: service)
    }

    /// - Parameter file: the file this is opened for, named in errors.
    public init(_ path: String, create: Bool = false, for file: String? = nil, service: ServiceAccount? = nil)
        throws(TurnkeeperError)
    {
        self.path = path
        self.service = service
        if create { try Self.createIfMissing(path) }
        self.fd = try Self.walk(path, for: file, service: service)
    }

    deinit { close(fd) }

    /// The path of `name` in this directory, for messages.
    public func describe(_ name: String) -> String { path.hasSuffix("/") ? path + name : path + "/" + name }

    /// Reads `name`, or nil when it does not exist. A link, anything but a regular file, or a file owned by
    /// another user (who could have placed it to receive what turnkeeper writes) is refused.
    public func read(_ name: String, limit: Int = 1 << 20) throws(TurnkeeperError) -> FileContents? {
        guard try existing(name) != nil else { return nil }
        return try FileContents.read(name, in: fd, path: describe(name), limit: limit)
    }

    /// Whether `name` exists; throws for what turnkeeper must not replace (a link, a device, another user's file).
    @discardableResult
    public func checkReplaceable(_ name: String) throws(TurnkeeperError) -> Bool { try existing(name) != nil }

    /// The facts about `name`, or nil when it does not exist; refuses what turnkeeper must not replace.
    func existing(_ name: String) throws(TurnkeeperError) -> stat? {
        var info = stat()
        guard fstatat(fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else {
            if errno == ENOENT { return nil }
            throw TurnkeeperError(.unreadableFile, "cannot read \(describe(name)): \(errnoDescription(errno)).")
        }
        let full = describe(name)
        switch info.st_mode & S_IFMT {
        case S_IFREG:
            break
        case S_IFLNK:
            throw TurnkeeperError(
                .unwritableFile,
                "\(full) is a symbolic link; turnkeeper reads and replaces only the file itself, never a link. "
                    + "Replace the link with the file, or name the link's target in turnkeeper.yaml.")
        default:
            throw TurnkeeperError(.unwritableFile, "\(full) exists and is not a regular file; nothing was written.")
        }
        guard Self.trusted(info.st_uid, service: service) else {
            throw TurnkeeperError(
                .unwritableFile,
                "\(full) is owned by \(ServiceAccount.describe(uid: info.st_uid)), not root: whoever placed it would "
                    + "receive every secret written to it. Nothing was written. Remove it (turnkeeper writes it anew), "
                    + "or `chown root` it after checking what it holds.")
        }
        return info
    }

    /// Replaces `name` atomically: a temporary file in this directory is written, flushed, renamed over the
    /// name, and the directory flushed, so a reader sees the old content or the new, even across a crash.
    public func write(
        _ bytes: [UInt8],
        to name: String,
        permissions: UInt32,
        maximumPermissions: UInt32,
        group: UInt32?,
        existing policy: AtomicFile.Existing,
        enforcingGroup: Bool = false
    ) throws(TurnkeeperError) {
        let full = describe(name)
        let current = try existing(name)
        if current != nil && policy == .refuse {
            throw TurnkeeperError(
                .unwritableFile, "\(full) already exists; nothing was written. Pass --force to replace it.")
        }
        removeStaleTemporaries(for: name)
        // With the reading service's group enforced, the mode is what it needs too (0640): a 0600 file it could
        // not read would break it as surely as a wrong group.
        let mode =
            enforcingGroup
            ? permissions : current.map { UInt32($0.st_mode) & 0o7777 & maximumPermissions } ?? permissions
        // An existing file keeps its owner and group, unless the group is the reading service's, set by config.
        var owner: (uid_t, gid_t)? = current.map { ($0.st_uid, $0.st_gid) } ?? group.map { (geteuid(), gid_t($0)) }
        if enforcingGroup, let group, let (uid, _) = owner { owner = (uid, gid_t(group)) }

        let temporary = try createTemporary(for: name)
        var committed = false
        defer { if !committed { unlinkat(fd, temporary.name, 0) } }
        do {
            defer { close(temporary.fd) }
            try Self.writeAll(bytes, to: temporary.fd, path: full)
            if let (uid, gid) = owner, fchown(temporary.fd, uid, gid) != 0 {
                throw TurnkeeperError(
                    .unwritableFile,
                    "cannot keep the owner of \(full): \(errnoDescription(errno)); nothing was written. Run as root "
                        + "or as the file's owner.")
            }
            guard fchmod(temporary.fd, mode_t(mode)) == 0, fsync(temporary.fd) == 0 else {
                throw TurnkeeperError(
                    .unwritableFile, "cannot write \(full): \(errnoDescription(errno)); nothing was written.")
            }
        }
        switch policy {
        case .replace:
            guard renameat(fd, temporary.name, fd, name) == 0 else {
                throw TurnkeeperError(
                    .unwritableFile, "cannot replace \(full): \(errnoDescription(errno)); nothing was written.")
            }
        case .refuse:
            // linkat fails if the name appeared since we looked, so a racing writer is never clobbered.
            guard linkat(fd, temporary.name, fd, name, 0) == 0 else {
                let code = errno
                throw TurnkeeperError(
                    .unwritableFile,
                    code == EEXIST
                        ? "\(full) already exists; nothing was written. Pass --force to replace it."
                        : "cannot create \(full): \(errnoDescription(code)); nothing was written.")
            }
            unlinkat(fd, temporary.name, 0)
        }
        committed = true
        fsync(fd)
    }

    /// Removes `name` (a regular file of ours, never a link), and flushes the directory. Missing is fine.
    public func remove(_ name: String) throws(TurnkeeperError) {
        guard try existing(name) != nil else { return }
        guard unlinkat(fd, name, 0) == 0 || errno == ENOENT else {
            throw TurnkeeperError(.unwritableFile, "cannot remove \(describe(name)): \(errnoDescription(errno)).")
        }
        fsync(fd)
    }

    /// Removes temporary copies of `name` that a killed run left (they may hold a secret). Only names of
    /// turnkeeper's own pattern, and only regular files of ours, are touched.
    public func removeStaleTemporaries(for name: String) {
        let prefix = ".\(name).turnkeeper-"
        let copy = dup(fd)
        guard copy >= 0, let handle = fdopendir(copy) else {
            if copy >= 0 { close(copy) }
            return
        }
        defer { closedir(handle) }
        rewinddir(handle)
        var stale: [String] = []
        while let entry = readdir(handle) {
            let entryName = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if entryName.hasPrefix(prefix) && entryName.hasSuffix(".tmp") { stale.append(entryName) }
        }
        for entryName in stale {
            var info = stat()
            if fstatat(fd, entryName, &info, AT_SYMLINK_NOFOLLOW) == 0, info.st_mode & S_IFMT == S_IFREG,
                info.st_uid == geteuid()
            {
                unlinkat(fd, entryName, 0)
            }
        }
    }

    /// Opens (creating it if asked) a lock file in this directory, refusing a link or another user's file.
    public func openLockFile(_ name: String) throws(TurnkeeperError) -> Int32 {
        _ = try existing(name)
        let lock = retryingOnInterrupt { openat(fd, name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600) }
        guard lock >= 0 else {
            throw TurnkeeperError(
                .unwritableFile, "cannot open \(describe(name)): \(errnoDescription(errno)). Check state_directory.")
        }
        var info = stat()
        guard fstat(lock, &info) == 0, info.st_mode & S_IFMT == S_IFREG, info.st_uid == geteuid() || info.st_uid == 0
        else {
            close(lock)
            throw TurnkeeperError(.unwritableFile, "\(describe(name)) is not a lock file of turnkeeper's; remove it.")
        }
        return lock
    }

    // MARK: Helpers

    private func createTemporary(for name: String) throws(TurnkeeperError) -> (fd: Int32, name: String) {
        for _ in 0..<16 {
            let candidate = AtomicFile.temporaryName(for: name)
            let temporary = retryingOnInterrupt {
                openat(fd, candidate, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
            }
            if temporary >= 0 { return (temporary, candidate) }
            if errno != EEXIST {
                let code = errno
                throw TurnkeeperError(
                    .unwritableFile,
                    "cannot write \(describe(name)): \(errnoDescription(code)) in \(path); nothing was written. "
                        + "Check that the directory is writable.")
            }
        }
        throw TurnkeeperError(.unwritableFile, "cannot create a temporary file in \(path); nothing was written.")
    }

    private static func writeAll(_ bytes: [UInt8], to fd: Int32, path: String) throws(TurnkeeperError) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { raw in
                retryingOnInterrupt { Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset) }
            }
            guard written > 0 else {
                throw TurnkeeperError(
                    .unwritableFile, "cannot write \(path): \(errnoDescription(errno)); nothing was written.")
            }
            offset += written
        }
    }

    private static func trusted(_ uid: uid_t, service: ServiceAccount?) -> Bool {
        uid == 0 || uid == geteuid() || (service.map { $0.uid == uid } ?? false)
    }

    /// Opens every directory from / down to `path` as written, each from the one before with `O_NOFOLLOW` and
    /// checked on its descriptor, so that nothing can be swapped between check and use. A link on the way is
    /// followed (at most 40) only where no one else could have placed or repointed it: in a directory only root
    /// (or we) may change, never one the service owns. Returns the last directory's descriptor.
    private static func walk(_ path: String, for file: String?, service: ServiceAccount?) throws(TurnkeeperError)
        -> Int32
    {
        var pending = path.split(separator: "/").map(String.init)
        if !path.hasPrefix("/") {
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            guard getcwd(&buffer, buffer.count) != nil else {
                throw TurnkeeperError(.unwritableFile, "cannot resolve \(path): \(errnoDescription(errno)).")
            }
            let cwd = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
            pending = String(decoding: cwd, as: UTF8.self).split(separator: "/").map(String.init) + pending
        }
        var fd = retryingOnInterrupt { open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        guard fd >= 0 else { throw TurnkeeperError(.unwritableFile, "cannot open /: \(errnoDescription(errno)).") }
        var trail: [String] = []
        var hops = 0
        func shown() -> String { "/" + trail.joined(separator: "/") }
        do throws(TurnkeeperError) {
            try check(fd, "/", isLast: pending.isEmpty, path: path, service: service)
            while !pending.isEmpty {
                let part = pending.removeFirst()
                if part == "." { continue }
                let next = retryingOnInterrupt { openat(fd, part, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW) }
                let code = errno
                if next < 0 && (code == ELOOP || code == ENOTDIR) && part != ".." {
                    let target = try followable(part, in: fd, shown: shown(), path: path)
                    hops += 1
                    guard hops <= 40 else {
                        throw TurnkeeperError(
                            .unwritableFile, "\(path) has too many links on its way; nothing was written.")
                    }
                    if target.hasPrefix("/") {
                        let root = retryingOnInterrupt { open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
                        guard root >= 0 else {
                            throw TurnkeeperError(.unwritableFile, "cannot open /: \(errnoDescription(errno)).")
                        }
                        close(fd)
                        fd = root
                        trail = []
                    }
                    pending = target.split(separator: "/").map(String.init) + pending
                    continue
                }
                guard next >= 0 else {
                    let what = file.map { " for \($0)" } ?? ""
                    throw TurnkeeperError(
                        .unwritableFile,
                        "cannot open the directory \(shown() == "/" ? "" : shown())/\(part)\(what): "
                            + "\(errnoDescription(code)); nothing was written. Check the path.")
                }
                close(fd)
                fd = next
                if part == ".." { _ = trail.popLast() } else { trail.append(part) }
                try check(fd, shown(), isLast: pending.allSatisfy { $0 == "." }, path: path, service: service)
            }
        } catch {
            close(fd)
            throw error
        }
        return fd
    }

    /// The target of the link `name` in the directory `fd`, when it may be followed: the directory is one only
    /// root (or we) may change, or a sticky one and the link root's (or ours). A link where the service or
    /// another user could have put it would let them choose where root writes.
    private static func followable(_ name: String, in fd: Int32, shown: String, path: String) throws(TurnkeeperError)
        -> String
    {
        let full = (shown == "/" ? "" : shown) + "/" + name
        var link = stat()
        var holder = stat()
        guard fstatat(fd, name, &link, AT_SYMLINK_NOFOLLOW) == 0, fstat(fd, &holder) == 0 else {
            throw TurnkeeperError(.unwritableFile, "cannot inspect \(full): \(errnoDescription(errno)).")
        }
        guard link.st_mode & S_IFMT == S_IFLNK else {
            throw TurnkeeperError(.unwritableFile, "\(full) is not a directory; check \(path).")
        }
        let rootsAlone = Self.trusted(holder.st_uid, service: nil)
        let sticky = holder.st_mode & S_ISVTX != 0
        let writable = holder.st_mode & 0o022 != 0
        let linkOwned = Self.trusted(link.st_uid, service: nil)
        guard rootsAlone && (!writable || (sticky && linkOwned)) else {
            throw TurnkeeperError(
                .unwritableFile,
                "\(full) is a link in \(shown), which another user may change, so they could point it anywhere and "
                    + "have turnkeeper (as root) write there; nothing was written. Name the real directory in "
                    + "turnkeeper.yaml, or make \(shown) root's alone (`chown root: \(shown) && chmod go-w \(shown)`).")
        }
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlinkat(fd, name, &buffer, buffer.count - 1)
        guard count > 0 else {
            throw TurnkeeperError(.unwritableFile, "cannot read the link \(full): \(errnoDescription(errno)).")
        }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// One directory on the way: owned by root, us or the service, and writable by no one else (sticky on the
    /// way only).
    private static func check(_ fd: Int32, _ prefix: String, isLast: Bool, path: String, service: ServiceAccount?)
        throws(TurnkeeperError)
    {
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw TurnkeeperError(.unwritableFile, "cannot inspect \(prefix): \(errnoDescription(errno)).")
        }
        guard info.st_mode & S_IFMT == S_IFDIR else {
            throw TurnkeeperError(.unwritableFile, "\(prefix) is not a directory; check \(path).")
        }
        let trustedOwner = trusted(info.st_uid, service: service)
        // Group write counts whatever the group: with an access ACL these bits are the mask of named users.
        let writableByOthers = info.st_mode & 0o022 != 0
        let sticky = info.st_mode & S_ISVTX != 0
        if !trustedOwner || (writableByOthers && (isLast || !sticky)) {
            let who =
                trustedOwner
                ? "writable by other users" : "owned by \(ServiceAccount.describe(uid: info.st_uid)), not root"
            throw TurnkeeperError(
                .unwritableFile,
                "\(prefix) is \(who), so another user could swap in a link and have turnkeeper (as root) "
                    + "overwrite any file; nothing was written. Run `chown root: \(prefix) && chmod go-w \(prefix)`, "
                    + "or keep turnkeeper's files in a directory only root may change.")
        }
    }

    private static func createIfMissing(_ path: String) throws(TurnkeeperError) {
        guard mkdir(path, 0o700) == 0 || errno == EEXIST else {
            throw TurnkeeperError(
                .unwritableFile, "cannot create the directory \(path): \(errnoDescription(errno)). Check the path.")
        }
    }

    /// A path's directory and last component, as the writes use them.
    public static func split(_ path: String) -> (directory: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return (".", path) }
        let directory = String(path[..<slash])
        return (directory.isEmpty ? "/" : directory, String(path[path.index(after: slash)...]))
    }
}
