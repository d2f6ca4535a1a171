import Glibc
public import TurnkeeperCore

/// `provision --apply HOST`: puts one host's part of the bundle where that host's services read it. A file
/// already there with other content is kept beside it as `NAME.turnkeeper-old`, never overwritten.
public enum ProvisionApply {
    public enum Host: String, Sendable, CaseIterable {
        case turnHost = "turn-host"
        case synapseHost = "synapse-host"
    }

    /// Bundle path → (installed path, group that reads it).
    static func destinations(_ host: Host) -> [(bundle: String, installed: String, group: String?)] {
        switch host {
        case .turnHost:
            [
                ("turn-host/turnserver.conf", "/etc/turnserver.conf", "turnserver"),
                (
                    "turn-host/coturn.service.d/turnkeeper.conf",
                    "/etc/systemd/system/coturn.service.d/turnkeeper.conf", nil
                ),
                ("turn-host/coturn-certificates.path", "/etc/systemd/system/coturn-certificates.path", nil),
                ("turn-host/coturn-certificates.service", "/etc/systemd/system/coturn-certificates.service", nil),
                ("turn-host/nftables-turn.nft", "/etc/nftables.d/turn.nft", nil),
                ("turn-host/turnkeeper.yaml", "/etc/turnkeeper/turnkeeper.yaml", nil),
                ("turn-host/root-key", "/etc/turnkeeper/root-key", nil),
            ]
        case .synapseHost:
            [
                ("synapse-host/conf.d/60-turn.yaml", "/etc/matrix-synapse/conf.d/60-turn.yaml", "matrix-synapse"),
                ("synapse-host/turnkeeper.yaml", "/etc/turnkeeper/turnkeeper.yaml", nil),
                ("synapse-host/root-key", "/etc/turnkeeper/root-key", nil),
            ]
        }
    }

    /// Installs `host`'s files from `files` under `root` ("/" on a real host). Returns what it did, a line each.
    public static func apply(_ files: [BundleFile], host: Host, root: String) throws(TurnkeeperError) -> [String] {
        let prefix = root == "/" ? "" : (root.hasSuffix("/") ? String(root.dropLast()) : root)
        var done: [String] = []
        for destination in destinations(host) {
            guard let file = files.first(where: { $0.path == destination.bundle }) else { continue }
            let path = prefix + destination.installed
            try makeDirectories(for: path)
            let bytes = Array(file.text.utf8)
            if let existing = try? FileContents.read(path, limit: 1 << 20) {
                if existing.bytes == bytes {
                    done.append("unchanged \(destination.installed)")
                    continue
                }
                guard rename(path, path + ".turnkeeper-old") == 0 else {
                    throw TurnkeeperError(
                        .unwritableFile, "cannot keep the existing \(path) aside: \(String(cString: strerror(errno)))")
                }
                done.append("kept the previous \(destination.installed) as \(destination.installed).turnkeeper-old")
            }
            // A group the host lacks (coturn or Synapse not installed yet) leaves the file root's, mode 0600.
            let group = destination.group.flatMap { getgrnam($0)?.pointee.gr_gid }
            let mode = file.mode & 0o640 == 0o640 && group == nil ? 0o600 : file.mode
            try AtomicFile.write(
                bytes, to: path, permissions: mode, maximumPermissions: 0o644, group: group, existing: .replace)
            done.append("installed \(destination.installed)")
        }
        return done
    }

    private static func makeDirectories(for path: String) throws(TurnkeeperError) {
        var current = ""
        for part in path.split(separator: "/").dropLast() {
            current += "/" + part
            if mkdir(current, 0o755) != 0 && errno != EEXIST {
                throw TurnkeeperError(.unwritableFile, "cannot create \(current): \(String(cString: strerror(errno)))")
            }
        }
    }
}
