import Glibc
public import TurnkeeperCore
public import TurnkeeperCredentials
import TurnkeeperYAML

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
    /// Other TURN options turnkeeper manages in the same file.
    public let options: Options
    /// Synapse's own account, which may own the directories on the way (Debian's package gives it
    /// /etc/matrix-synapse): it could only ever reach its own secret.
    public let service: ServiceAccount?

    /// Synapse's TURN options besides the secret; each is written when set.
    public struct Options: Sendable, Equatable {
        public var turnURIs: [String]?
        public var turnUserLifetime: String?
        public var turnAllowGuests: Bool?

        public init(turnURIs: [String]? = nil, turnUserLifetime: String? = nil, turnAllowGuests: Bool? = nil) {
            self.turnURIs = turnURIs
            self.turnUserLifetime = turnUserLifetime
            self.turnAllowGuests = turnAllowGuests
        }
    }

    public init(
        confFile: String,
        mode: Mode,
        secretFile: String? = nil,
        group: String? = nil,
        options: Options = .init(),
        service: ServiceAccount? = nil
    ) {
        self.service = service
        self.confFile = confFile
        self.mode = mode
        self.secretFile = secretFile
        self.group = group
        self.options = options
    }

    /// The files `write` would write, path to content: the conf.d file, and in path mode the secret file.
    /// Synapse's effective config can be computed from them before anything is written.
    public func render(_ secret: TurnSecret) throws(TurnkeeperError) -> [String: [UInt8]] {
        var lines = [Self.marker]
        var files: [String: [UInt8]] = [:]
        switch mode {
        case .inline:
            let quoted = secret.withExposedBytes { YAMLText.doubleQuoted(String(decoding: $0, as: UTF8.self)) }
            // Cancels a path set in homeserver.yaml: both set would stop Synapse.
            lines += ["turn_shared_secret: \(quoted)", "turn_shared_secret_path: null"]
        case .path:
            guard let secretFile else {
                throw TurnkeeperError(
                    .invalidConfiguration, "Synapse's path mode needs a secret file path (synapse.secret_file).")
            }
            files[secretFile] = secret.withExposedBytes { $0 + [0x0A] }
            // Cancels an inline secret from homeserver.yaml: both set would stop Synapse.
            lines += ["turn_shared_secret: null", "turn_shared_secret_path: \(YAMLText.doubleQuoted(secretFile))"]
        }
        if let uris = options.turnURIs {
            lines.append("turn_uris: [" + uris.map(YAMLText.doubleQuoted).joined(separator: ", ") + "]")
        }
        if let lifetime = options.turnUserLifetime {
            lines.append("turn_user_lifetime: \(YAMLText.doubleQuoted(lifetime))")
        }
        if let guests = options.turnAllowGuests { lines.append("turn_allow_guests: \(guests)") }
        files[confFile] = Array((lines.joined(separator: "\n") + "\n").utf8)
        return files
    }

    /// Writes `secret` so that a restarted Synapse uses it. Files are replaced atomically through their
    /// directories' descriptors; a conf.d file turnkeeper did not write, a link, or a file another user owns is
    /// never overwritten, and nothing is written unless every file can be.
    public func write(_ secret: TurnSecret) throws(TurnkeeperError) {
        let gid = try groupID()
        let files = try render(secret)
        let conf = try TrustedDirectory(containing: confFile, service: service)
        let confName = Self.name(of: confFile)
        try refuseForeignFile(confName, in: conf)
        if let secretFile, let contents = files[secretFile] {
            let directory = try TrustedDirectory(containing: secretFile, service: service)
            try directory.write(
                contents, to: Self.name(of: secretFile), permissions: 0o640, maximumPermissions: 0o640, group: gid,
                existing: .replace, enforcingGroup: true)
        }
        try conf.write(
            files[confFile] ?? [], to: confName, permissions: 0o640, maximumPermissions: 0o640, group: gid,
            existing: .replace, enforcingGroup: true)
    }

    /// Checks, without writing, that `write` could write: the directories are safe, the conf.d file is ours,
    /// no file is a link or another user's, and the group exists. Also clears temporary copies a killed run left.
    /// `removingStale: false` for `check`, which changes nothing.
    public func checkWritable(removingStale: Bool = true) throws(TurnkeeperError) {
        _ = try groupID()
        let conf = try TrustedDirectory(containing: confFile, service: service)
        try refuseForeignFile(Self.name(of: confFile), in: conf)
        if removingStale { conf.removeStaleTemporaries(for: Self.name(of: confFile)) }
        if let secretFile {
            let directory = try TrustedDirectory(containing: secretFile, service: service)
            try directory.checkReplaceable(Self.name(of: secretFile))
            if removingStale { directory.removeStaleTemporaries(for: Self.name(of: secretFile)) }
        }
    }

    private func refuseForeignFile(_ name: String, in directory: borrowing TrustedDirectory) throws(TurnkeeperError) {
        guard let existing = try directory.read(name) else { return }
        guard existing.bytes.starts(with: Array(Self.marker.utf8)) else {
            throw TurnkeeperError(
                .unwritableFile,
                "\(existing.path) exists and was not written by turnkeeper; nothing was written. Move its settings "
                    + "into another conf.d file (or homeserver.yaml) and remove it, or name another file for turnkeeper."
            )
        }
    }

    private static func name(of path: String) -> String { TrustedDirectory.split(path).name }

    private func groupID() throws(TurnkeeperError) -> UInt32? {
        guard let group else { return nil }
        if let numeric = UInt32(group) { return numeric }
        guard let gid = GroupID.lookup(group) else {
            throw TurnkeeperError(
                .invalidConfiguration,
                "the group \(group) does not exist on this host. Name the group Synapse runs as (Debian: matrix-synapse)."
            )
        }
        return gid
    }
}
