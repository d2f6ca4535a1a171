import Glibc

/// Replaces files so that a reader sees the old content or the new, never a mix, even across a crash:
/// a temporary file in the same directory is written, flushed to disk, renamed over the target,
/// and the directory is flushed so that the rename itself survives a power cut. Everything goes through a
/// ``TrustedDirectory``: a target that is a link, or is owned by another user, is refused.
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
        let (_, name) = TrustedDirectory.split(path)
        try TrustedDirectory(containing: path).write(
            bytes, to: name, permissions: permissions, maximumPermissions: maximumPermissions, group: group,
            existing: existing)
    }

    /// A leading dot and a ".tmp" suffix: Synapse reads every *.yaml in conf.d, hidden or not.
    static func temporaryName(for name: String) -> String {
        ".\(name).turnkeeper-\(String(UInt64.random(in: 0...UInt64.max), radix: 16)).tmp"
    }
}
