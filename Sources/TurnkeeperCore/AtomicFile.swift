import Glibc

/// Replaces files so that a reader sees the old content or the new, never a mix, even across a crash:
/// a temporary file in the same directory is written, flushed to disk, renamed over the target,
/// and the directory is flushed so that the rename itself survives a power cut.
public enum AtomicFile {
    /// What to do when the target already exists.
    public enum Existing: Sendable {
        /// Fail with an error that names the file.
        case refuse
        /// Replace it, keeping its owner, group and mode (the mode narrowed by `maximumPermissions`).
        case replace
    }

    /// Writes `bytes` to `path`.
    ///
    /// - Parameters:
    ///   - permissions: the mode of a file created new.
    ///   - maximumPermissions: bits an existing file's mode may keep; a secret file that others
    ///     could read is narrowed rather than replaced with the same leak.
    ///   - group: the group of a file created new, when a reading service needs it.
    public static func write(
        _ bytes: [UInt8],
        to path: String,
        permissions: UInt32 = 0o600,
        maximumPermissions: UInt32 = 0o7777,
        group: UInt32? = nil,
        existing: Existing
    ) throws(TurnkeeperError) {
        let target = resolvingSymlink(path)
        let (directory, name) = split(target)

        var current = stat()
        let exists = lstat(target, &current) == 0
        if exists && existing == .refuse {
            throw TurnkeeperError(
                .unwritableFile, "\(path) already exists; nothing was written. Pass --force to replace it.")
        }
        if exists && current.st_mode & S_IFMT != S_IFREG {
            throw TurnkeeperError(.unwritableFile, "\(path) exists and is not a regular file; nothing was written.")
        }

        let mode = exists ? (UInt32(current.st_mode) & 0o7777 & maximumPermissions) : permissions
        let owner: (uid_t, gid_t)? = exists ? (current.st_uid, current.st_gid) : group.map { (getuid(), gid_t($0)) }

        let temporary = try createTemporary(in: directory, for: name, path: path)
        var committed = false
        defer { if !committed { unlink(temporary.path) } }

        do {
            defer { close(temporary.fd) }
            try writeAll(bytes, to: temporary.fd, path: path)
            if let (uid, gid) = owner, fchown(temporary.fd, uid, gid) != 0 {
                throw TurnkeeperError(
                    .unwritableFile,
                    "cannot keep the owner of \(path): \(errnoDescription(errno)); nothing was written. Run as root or as the file's owner."
                )
            }
            guard fchmod(temporary.fd, mode_t(mode)) == 0, fsync(temporary.fd) == 0 else {
                throw TurnkeeperError(
                    .unwritableFile, "cannot write \(path): \(errnoDescription(errno)); nothing was written.")
            }
        }

        switch existing {
        case .replace:
            guard rename(temporary.path, target) == 0 else {
                throw TurnkeeperError(
                    .unwritableFile, "cannot replace \(path): \(errnoDescription(errno)); nothing was written.")
            }
        case .refuse:
            // link() fails if the name appeared since we looked, so a racing writer is never clobbered.
            guard link(temporary.path, target) == 0 else {
                let code = errno
                let reason =
                    code == EEXIST
                    ? "\(path) already exists; nothing was written. Pass --force to replace it."
                    : "cannot create \(path): \(errnoDescription(code)); nothing was written."
                throw TurnkeeperError(.unwritableFile, reason)
            }
            unlink(temporary.path)
        }
        committed = true
        syncDirectory(directory)
    }

    private static func createTemporary(
        in directory: String,
        for name: String,
        path: String
    ) throws(TurnkeeperError) -> (fd: Int32, path: String) {
        for _ in 0..<16 {
            let candidate = "\(directory)/\(temporaryName(for: name))"
            let fd = retryingOnInterrupt {
                open(candidate, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
            }
            if fd >= 0 { return (fd, candidate) }
            if errno != EEXIST {
                let code = errno
                throw TurnkeeperError(
                    .unwritableFile,
                    "cannot write \(path): \(errnoDescription(code)) in \(directory); nothing was written. Check that the directory exists and is writable."
                )
            }
        }
        throw TurnkeeperError(.unwritableFile, "cannot create a temporary file in \(directory); nothing was written.")
    }

    /// A leading dot and a ".tmp" suffix: Synapse reads every *.yaml in conf.d, hidden or not.
    static func temporaryName(for name: String) -> String {
        ".\(name).turnkeeper-\(String(UInt64.random(in: 0...UInt64.max), radix: 16)).tmp"
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

    private static func syncDirectory(_ directory: String) {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }

    /// A managed file that is a symlink is written through the link, so the admin's layout survives.
    private static func resolvingSymlink(_ path: String) -> String {
        var info = stat()
        guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFLNK, let resolved = realpath(path, nil) else {
            return path
        }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    private static func split(_ path: String) -> (directory: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return (".", path) }
        let directory = String(path[..<slash])
        return (directory.isEmpty ? "/" : directory, String(path[path.index(after: slash)...]))
    }
}
