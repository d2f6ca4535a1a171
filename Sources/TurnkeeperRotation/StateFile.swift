import FoundationEssentials
import Glibc
import TurnkeeperCore
import TurnkeeperExecution
import TurnkeeperStores

/// One of turnkeeper's JSON state files (state.json, epochs.json): 0600, replaced atomically, read and written
/// through the checked state directory, on NIO's thread pool. They hold secret values, so a file that does not
/// decode is reported without the decoder's words (which may quote it).
struct StateFile<Value: Codable & Sendable>: Sendable {
    let directory: String
    let name: String

    var path: String { directory + "/" + name }

    /// nil when there is no file yet. Any other failure to read stops the caller: a rotation that adopted afresh
    /// would forget the secrets still waiting to be retired.
    func load() async throws -> Value? {
        let path = path
        let name = name
        return try await Blocking.run { () throws -> Value? in
            guard access(path, F_OK) == 0 else {
                guard errno == ENOENT else {
                    // Not "no rotation yet": a state directory that is a file, or one turnkeeper may not read.
                    throw TurnkeeperError(
                        .unreadableFile,
                        "cannot read \(path): \(errnoDescription(errno)). rotation.state_directory must be a "
                            + "directory only root may change; fix it before anything else.")
                }
                return nil
            }
            guard let file = try TrustedDirectory(containing: path).read(name) else { return nil }
            do {
                return try JSONDecoder().decode(Value.self, from: Data(file.bytes))
            } catch {
                throw TurnkeeperError(
                    .unreadableFile,
                    "\(path) is not a turnkeeper state file; nothing was changed. Restore it from a backup, or "
                        + "move it away to adopt the current setup afresh.")
            }
        }
    }

    func save(_ value: Value) async throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        let bytes: [UInt8]
        do {
            bytes = Array(try encoder.encode(value))
        } catch {
            throw TurnkeeperError(.unwritableFile, "cannot encode turnkeeper's state for \(path)")
        }
        let path = path
        try await Blocking.run {
            try AtomicFile.write(bytes, to: path, permissions: 0o600, maximumPermissions: 0o600, existing: .replace)
        }
    }
}

/// An exclusive lock on the state directory: two turnkeeper processes never rotate at once. Taking it also
/// checks the directory: turnkeeper's state must live where only root can change it.
struct Lock: Sendable {
    private let fd: Int32

    private init(fd: Int32) { self.fd = fd }

    static func take(_ directory: String) async throws -> Lock {
        try await Blocking.run { () throws -> Lock in
            let trusted = try TrustedDirectory(directory, create: true)
            let fd = try trusted.openLockFile("lock")
            guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
                close(fd)
                throw TurnkeeperError(
                    .lockHeld,
                    "another turnkeeper holds \(trusted.describe("lock")): a rotation is running. Wait for it, or "
                        + "check `pgrep -a turnkeeper`."
                )
            }
            for name in ["state.json", "epochs.json"] { trusted.removeStaleTemporaries(for: name) }
            return Lock(fd: fd)
        }
    }

    func release() {
        flock(fd, LOCK_UN)
        close(fd)
    }
}
