import Foundation
import Glibc
import TestSupport
import Testing

@testable import TurnkeeperCore

@Suite("Atomic file replacement", .mayBlock)
struct AtomicFileTests {
    let directory: TemporaryDirectory
    init() throws { directory = try TemporaryDirectory() }

    /// Everything in the directory but the named files: leftover temporaries show up here.
    private func strays(besides names: Set<String>) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { !names.contains($0) }
    }

    @Test("A new file gets the requested mode and group, and no temporary is left")
    func create() throws {
        defer { directory.remove() }
        let path = directory.file("new.yaml")
        try AtomicFile.write(Array("a: 1\n".utf8), to: path, permissions: 0o640, group: 65534, existing: .refuse)
        #expect(try directory.read("new.yaml") == "a: 1\n")
        #expect(permissions(of: path) == 0o640)
        #expect(ownership(of: path).gid == 65534)
        #expect(try strays(besides: ["new.yaml"]).isEmpty)
    }

    @Test("Refusing to overwrite leaves the existing content alone")
    func refuse() throws {
        defer { directory.remove() }
        let path = try directory.write("kept", "original\n")
        #expect {
            try AtomicFile.write(Array("new\n".utf8), to: path, existing: .refuse)
        } throws: { error in
            (error as? TurnkeeperError)?.reason.contains("\(path) already exists") == true
        }
        #expect(try directory.read("kept") == "original\n")
        #expect(try strays(besides: ["kept"]).isEmpty)
    }

    @Test("Replacing keeps owner, group and mode")
    func replaceKeepsOwnership() throws {
        defer { directory.remove() }
        let path = try directory.write("conf", "old\n", mode: 0o640)
        chown(path, 0, 65534)
        try AtomicFile.write(Array("new\n".utf8), to: path, permissions: 0o600, existing: .replace)
        #expect(try directory.read("conf") == "new\n")
        #expect(permissions(of: path) == 0o640)
        #expect(ownership(of: path).uid == 0)
        #expect(ownership(of: path).gid == 65534)
    }

    @Test("A file another user owns is refused: whoever placed it would receive the secret")
    func foreignOwner() throws {
        defer { directory.remove() }
        let path = try directory.write("conf", "old\n", mode: 0o640)
        chown(path, 65534, 65534)
        #expect {
            try AtomicFile.write(Array("new\n".utf8), to: path, existing: .replace)
        } throws: { error in
            (error as? TurnkeeperError)?.reason.contains("owned by nobody (uid 65534)") == true
        }
        #expect(try directory.read("conf") == "old\n")
        #expect(try strays(besides: ["conf"]).isEmpty)
    }

    @Test("A symlink is refused, its target untouched; a link in the directory's path is resolved first")
    func symlink() throws {
        defer { directory.remove() }
        let real = try directory.write("real", "old\n")
        let link = directory.file("link")
        #expect(Glibc.symlink(real, link) == 0)
        #expect {
            try AtomicFile.write(Array("new\n".utf8), to: link, existing: .replace)
        } throws: { error in
            (error as? TurnkeeperError)?.reason.contains("is a symbolic link") == true
        }
        #expect(try directory.read("real") == "old\n")
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: link)) == real)
        // A dangling link is refused too: writing would otherwise create its target.
        let dangling = directory.file("dangling")
        #expect(Glibc.symlink(directory.file("created"), dangling) == 0)
        #expect(throws: TurnkeeperError.self) { try AtomicFile.write([1], to: dangling, existing: .replace) }
        #expect(access(directory.file("created"), F_OK) != 0)
        // The directory reached through a link of root's is fine.
        let sub = directory.file("sub")
        try FileManager.default.createDirectory(atPath: sub, withIntermediateDirectories: false)
        #expect(Glibc.symlink(sub, directory.file("sublink")) == 0)
        try AtomicFile.write(Array("x\n".utf8), to: directory.file("sublink/f"), existing: .replace)
        #expect(try directory.read("sub/f") == "x\n")
    }

    @Test("A directory others may write is refused with the fix; stale temporaries of a killed run are removed")
    func directories() throws {
        defer { directory.remove() }
        let open = directory.file("open")
        try FileManager.default.createDirectory(atPath: open, withIntermediateDirectories: false)
        chmod(open, 0o777)
        #expect {
            try AtomicFile.write([1], to: open + "/f", existing: .replace)
        } throws: { error in
            let reason = (error as? TurnkeeperError)?.reason ?? ""
            return reason.contains("writable by other users") && reason.contains("chmod go-w")
        }
        chmod(open, 0o755)
        chown(open, 65534, 65534)
        #expect(throws: TurnkeeperError.self) { try AtomicFile.write([1], to: open + "/f", existing: .replace) }
        #expect(access(open + "/f", F_OK) != 0)
        // A run killed between creating its temporary and renaming it leaves this behind.
        let stale = try directory.write(".conf.turnkeeper-1234abcd.tmp", "old secret\n")
        let other = try directory.write(".other.turnkeeper-1234abcd.tmp", "not ours to judge\n")
        try AtomicFile.write(Array("new\n".utf8), to: directory.file("conf"), existing: .replace)
        #expect(access(stale, F_OK) != 0)
        #expect(access(other, F_OK) == 0)
    }

    @Test("A missing directory or a non-regular target is an error naming the path, and nothing is written")
    func failures() throws {
        defer { directory.remove() }
        let missing = directory.file("no-such-dir/file")
        #expect {
            try AtomicFile.write([1], to: missing, existing: .replace)
        } throws: { error in
            (error as? TurnkeeperError)?.reason.contains(missing) == true
        }
        let subdirectory = directory.file("sub")
        try FileManager.default.createDirectory(atPath: subdirectory, withIntermediateDirectories: false)
        #expect(throws: TurnkeeperError.self) { try AtomicFile.write([1], to: subdirectory, existing: .replace) }
        #expect(try strays(besides: ["sub"]).isEmpty)
    }

    @Test("Temporary names are hidden and never end in .yaml, which Synapse would read from conf.d")
    func temporaryNames() {
        let name = AtomicFile.temporaryName(for: "90-turnkeeper.yaml")
        #expect(name.hasPrefix(".90-turnkeeper.yaml."))
        #expect(!name.hasSuffix(".yaml"))
        #expect(name != AtomicFile.temporaryName(for: "90-turnkeeper.yaml"))
    }
}

@Suite("Directories a service account owns (Debian's /etc/matrix-synapse)", .mayBlock)
struct ServiceOwnedDirectoryTests {
    @Test("Refused unless that account is named; named, the file is written and a link swapped in is not followed")
    func serviceOwned() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        // nobody is never a service account by name (many services share it); as a stand-in here it is one.
        #expect(ServiceAccount.lookup("nobody") == nil && ServiceAccount.lookup("daemon") == nil)
        let nobody = ServiceAccount(name: "nobody", uid: 65534)
        // /etc/matrix-synapse as the developers' package leaves it: matrix-synapse:nogroup 0755, conf.d inside.
        let synapse = directory.file("matrix-synapse")
        try FileManager.default.createDirectory(atPath: synapse + "/conf.d", withIntermediateDirectories: true)
        chown(synapse, nobody.uid, 65534)
        chmod(synapse, 0o755)
        let file = synapse + "/conf.d/90-turnkeeper.yaml"
        #expect {
            _ = try TrustedDirectory(containing: file)
        } throws: { error in
            (error as? TurnkeeperError)?.reason.contains("owned by nobody (uid 65534), not root") == true
        }
        try TrustedDirectory(containing: file, service: nobody).write(
            Array("a: 1\n".utf8), to: "90-turnkeeper.yaml", permissions: 0o640, maximumPermissions: 0o640,
            group: 65534, existing: .replace, enforcingGroup: true)
        #expect(try directory.read("matrix-synapse/conf.d/90-turnkeeper.yaml") == "a: 1\n")
        #expect(ownership(of: file).uid == 0 && ownership(of: file).gid == 65534)
        // The account swaps conf.d for a link elsewhere: the walk never follows it, nothing is written there.
        let elsewhere = directory.file("elsewhere")
        try FileManager.default.createDirectory(atPath: elsewhere, withIntermediateDirectories: true)
        try FileManager.default.moveItem(atPath: synapse + "/conf.d", toPath: synapse + "/conf.d.old")
        try FileManager.default.createSymbolicLink(atPath: synapse + "/conf.d", withDestinationPath: elsewhere)
        let opened = Result { () throws -> Void in
            try TrustedDirectory(containing: file, service: nobody).write(
                Array("b: 2\n".utf8), to: "90-turnkeeper.yaml", permissions: 0o640, maximumPermissions: 0o640,
                group: 65534, existing: .replace, enforcingGroup: true)
        }
        #expect(throws: TurnkeeperError.self) { try opened.get() }
        #expect(try FileManager.default.contentsOfDirectory(atPath: elsewhere).isEmpty)
    }
}

@Suite("Reading files", .mayBlock)
struct FileContentsTests {
    @Test("Size limit, non-regular files and missing files are refused with the path")
    func limits() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let big = try directory.write("big", String(repeating: "x", count: 100))
        #expect(throws: TurnkeeperError.self) { try FileContents.read(big, limit: 99) }
        #expect(try FileContents.read(big, limit: 100).bytes.count == 100)
        #expect(throws: TurnkeeperError.self) { try FileContents.read("/dev/zero") }
        #expect(throws: TurnkeeperError.self) { try FileContents.read(directory.file("absent")) }
        let mode = try directory.write("mode", "x", mode: 0o644)
        #expect(try FileContents.read(mode).isWorldReadable)
    }
}
