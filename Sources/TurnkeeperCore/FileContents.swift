import Glibc

/// A small file read whole, with the facts about it that callers act on.
public struct FileContents: Sendable {
    public let path: String
    public let bytes: [UInt8]
    /// Permission bits (`st_mode & 0o7777`).
    public let permissions: UInt32
    public let ownerID: UInt32
    public let groupID: UInt32

    public init(path: String, bytes: [UInt8], permissions: UInt32, ownerID: UInt32, groupID: UInt32) {
        self.path = path
        self.bytes = bytes
        self.permissions = permissions
        self.ownerID = ownerID
        self.groupID = groupID
    }

    /// True when users other than the owner and group may read the file.
    public var isWorldReadable: Bool { permissions & 0o004 != 0 }

    /// Reads `path`, refusing anything that is not a regular file or is larger than `limit` bytes,
    /// so a mistaken path (a device, a log) cannot make us read without end.
    public static func read(_ path: String, limit: Int = 64 * 1024) throws(TurnkeeperError) -> FileContents {
        // Not even opened unless it is a regular file: opening a device (a watchdog, a tape) can act on its own.
        var before = stat()
        if stat(path, &before) == 0 && before.st_mode & S_IFMT != S_IFREG {
            throw TurnkeeperError(.unreadableFile, "cannot read \(path): it is not a regular file. Name a file.")
        }
        let fd = retryingOnInterrupt { open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK) }
        return try read(fd: fd, path: path, limit: limit)
    }

    /// Reads `name` in the directory `directory`, refusing a symbolic link: for files turnkeeper will replace,
    /// whose checks must be about the file itself.
    public static func read(_ name: String, in directory: Int32, path: String, limit: Int = 64 * 1024)
        throws(TurnkeeperError) -> FileContents
    {
        let fd = retryingOnInterrupt {
            openat(directory, name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW)
        }
        if fd < 0 && errno == ELOOP {
            throw TurnkeeperError(
                .unwritableFile,
                "\(path) is a symbolic link; turnkeeper reads and replaces only the file itself. Replace the link with "
                    + "the file, or name the link's target in turnkeeper.yaml.")
        }
        return try read(fd: fd, path: path, limit: limit)
    }

    private static func read(fd: Int32, path: String, limit: Int) throws(TurnkeeperError) -> FileContents {
        guard fd >= 0 else {
            let code = errno
            let hint =
                switch code {
                case ENOENT: "Check the path."
                case EACCES: "Run turnkeeper as a user that may read it, or fix its owner and mode."
                default: "Check the path and its permissions."
                }
            throw TurnkeeperError(.unreadableFile, "cannot read \(path): \(errnoDescription(code)). \(hint)")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw TurnkeeperError(.unreadableFile, "cannot read \(path): \(errnoDescription(errno)).")
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw TurnkeeperError(.unreadableFile, "cannot read \(path): it is not a regular file. Name a file.")
        }
        guard info.st_size <= limit else {
            throw TurnkeeperError(
                .unreadableFile,
                "cannot read \(path): it holds \(info.st_size) bytes, more than the \(limit) expected. Check the path."
            )
        }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { raw in
                retryingOnInterrupt { Glibc.read(fd, raw.baseAddress, raw.count) }
            }
            if count < 0 {
                throw TurnkeeperError(.unreadableFile, "cannot read \(path): \(errnoDescription(errno)).")
            }
            if count == 0 { break }
            bytes.append(contentsOf: buffer[0..<count])
            if bytes.count > limit {
                throw TurnkeeperError(
                    .unreadableFile,
                    "cannot read \(path): it holds more than the \(limit) bytes expected. Check the path."
                )
            }
        }
        return FileContents(
            path: path, bytes: bytes, permissions: UInt32(info.st_mode) & 0o7777, ownerID: info.st_uid,
            groupID: info.st_gid)
    }

    /// A small file holding one value (a password, a token): trailing line breaks stripped, empty refused.
    /// `what` names the value in the error, such as "the TURN password".
    public static func readValue(_ path: String, what: String) throws(TurnkeeperError) -> String {
        var bytes = try read(path, limit: 4096).bytes
        while bytes.last == 0x0A || bytes.last == 0x0D { bytes.removeLast() }
        guard !bytes.isEmpty else {
            throw TurnkeeperError(.unreadableFile, "\(path) is empty. Put \(what) in it.")
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
