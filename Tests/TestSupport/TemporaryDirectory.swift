import Foundation
import Glibc

/// A fresh private directory under /tmp, removed by ``remove()``.
public struct TemporaryDirectory: Sendable {
    public let path: String

    public init(_ label: String = "turnkeeper") throws {
        var template = Array("/tmp/\(label)-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw TestFailure("mkdtemp failed: \(String(cString: strerror(errno)))")
        }
        path = String(cString: made)
    }

    public func file(_ name: String) -> String { "\(path)/\(name)" }

    @discardableResult
    public func write(_ name: String, _ text: String, mode: mode_t = 0o600) throws -> String {
        let target = file(name)
        guard FileManager.default.createFile(atPath: target, contents: Data(text.utf8)) else {
            throw TestFailure("cannot create \(target)")
        }
        chmod(target, mode)
        return target
    }

    public func read(_ name: String) throws -> String {
        try String(contentsOfFile: file(name), encoding: .utf8)
    }

    public func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// A failure of the test harness itself, as opposed to the behaviour under test.
public struct TestFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Permission bits of `path`.
public func permissions(of path: String) -> mode_t {
    var info = stat()
    precondition(stat(path, &info) == 0, "stat \(path)")
    return info.st_mode & 0o7777
}

/// Owner and group of `path`.
public func ownership(of path: String) -> (uid: uid_t, gid: gid_t) {
    var info = stat()
    precondition(stat(path, &info) == 0, "stat \(path)")
    return (info.st_uid, info.st_gid)
}
