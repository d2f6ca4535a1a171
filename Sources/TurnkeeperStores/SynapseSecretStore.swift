import Glibc
public import TurnkeeperCore
public import TurnkeeperCredentials

/// The conf.d file turnkeeper owns in Synapse's config directory, and in `path` mode the secret file it
/// points at. Synapse reads them once at startup, so a change needs Synapse restarted.
public struct SynapseSecretStore: Sendable {
    public enum Mode: String, Sendable {
        /// `turn_shared_secret: "…"` in the conf.d file.
        case inline
        /// `turn_shared_secret_path: FILE` in the conf.d file, the secret alone in FILE.
        case path
    }

    /// The first line of every file turnkeeper writes, and how it knows a file is its own.
    public static let marker = "# Managed by turnkeeper: rewritten at every rotation. Change turnkeeper.yaml instead."

    public let confFile: String
    public let mode: Mode
    /// Required in `path` mode.
    public let secretFile: String?
    /// The group Synapse runs as (Debian: matrix-synapse): new files are 0640 and owned by it.
    public let group: String?
    /// Other TURN options turnkeeper manages in the same file, already rendered as YAML values.
    public let managedOptions: [(key: String, yaml: String)]

    public init(
        confFile: String,
        mode: Mode,
        secretFile: String? = nil,
        group: String? = nil,
        managedOptions: [(key: String, yaml: String)] = []
    ) {
        self.confFile = confFile
        self.mode = mode
        self.secretFile = secretFile
        self.group = group
        self.managedOptions = managedOptions
    }

    /// Writes `secret` so that a restarted Synapse uses it. Files are replaced atomically; a conf.d file
    /// turnkeeper did not write is never overwritten.
    public func write(_ secret: TurnSecret) throws(TurnkeeperError) {
        let gid = try groupID()
        try refuseForeignFile(confFile)
        var lines = [Self.marker]
        switch mode {
        case .inline:
            let quoted = secret.withExposedBytes { "\"\(String(decoding: $0, as: UTF8.self))\"" }
            // Cancels a path set in homeserver.yaml: both set would stop Synapse.
            lines += ["turn_shared_secret: \(quoted)", "turn_shared_secret_path: null"]
        case .path:
            guard let secretFile else {
                throw TurnkeeperError(
                    .invalidArgument, "Synapse's path mode needs a secret file path (synapse.secret_file).")
            }
            let contents = secret.withExposedBytes { $0 + [0x0A] }
            try AtomicFile.write(
                contents, to: secretFile, permissions: 0o640, maximumPermissions: 0o640, group: gid, existing: .replace)
            // Cancels an inline secret from homeserver.yaml: both set would stop Synapse.
            lines += ["turn_shared_secret: null", "turn_shared_secret_path: \"\(secretFile)\""]
        }
        lines += managedOptions.map { "\($0.key): \($0.yaml)" }
        try AtomicFile.write(
            Array((lines.joined(separator: "\n") + "\n").utf8),
            to: confFile,
            permissions: 0o640,
            maximumPermissions: 0o640,
            group: gid,
            existing: .replace
        )
    }

    private func refuseForeignFile(_ path: String) throws(TurnkeeperError) {
        guard let existing = try? FileContents.read(path, limit: 1 << 20) else { return }
        let text = String(decoding: existing.bytes, as: UTF8.self)
        guard text.hasPrefix(Self.marker) else {
            throw TurnkeeperError(
                .unwritableFile,
                "\(path) exists and was not written by turnkeeper; nothing was written. Move its settings into "
                    + "another conf.d file (or homeserver.yaml) and remove it, or name another file for turnkeeper."
            )
        }
    }

    private func groupID() throws(TurnkeeperError) -> UInt32? {
        guard let group else { return nil }
        if let numeric = UInt32(group) { return numeric }
        guard let entry = getgrnam(group) else {
            throw TurnkeeperError(
                .invalidArgument,
                "the group \(group) does not exist on this host. Name the group Synapse runs as (Debian: matrix-synapse)."
            )
        }
        return entry.pointee.gr_gid
    }
}
