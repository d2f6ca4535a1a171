import Glibc
public import TurnkeeperCore

/// Writes a rendered bundle as a whole or not at all: into a temporary directory beside the target, every
/// file fsynced, then one rename. A directory that already exists is never touched.
public enum ProvisionBundle {
    public static func write(_ files: [BundleFile], to directory: String) throws(TurnkeeperError) {
        let target = directory.hasSuffix("/") ? String(directory.dropLast()) : directory
        guard access(target, F_OK) != 0 else {
            throw TurnkeeperError(
                .invalidArgument, "\(target) already exists; give provision a new directory (nothing was written)")
        }
        let parent = target.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        let staging = (parent.isEmpty ? (target.hasPrefix("/") ? "" : ".") : parent) + "/.turnkeeper-bundle-XXXXXX"
        var template = Array(staging.utf8CString)
        guard let made = mkdtemp(&template) else {
            throw TurnkeeperError(
                .unwritableFile, "cannot create a directory beside \(target): \(String(cString: strerror(errno)))")
        }
        let stage = String(cString: made)
        do throws(TurnkeeperError) {
            for file in files {
                let path = stage + "/" + file.path
                let folders = file.path.split(separator: "/").dropLast()
                var current = stage
                for folder in folders {
                    current += "/" + folder
                    if mkdir(current, 0o700) != 0 && errno != EEXIST {
                        throw TurnkeeperError(
                            .unwritableFile, "cannot create \(current): \(String(cString: strerror(errno)))")
                    }
                }
                try AtomicFile.write(
                    Array(file.text.utf8), to: path, permissions: file.mode, maximumPermissions: 0o644,
                    existing: .refuse)
            }
            guard rename(stage, target) == 0 else {
                throw TurnkeeperError(
                    .unwritableFile, "cannot move the bundle into \(target): \(String(cString: strerror(errno)))")
            }
        } catch {
            removeTree(stage)
            throw error
        }
    }

    private static func removeTree(_ path: String) {
        guard let directory = opendir(path) else {
            unlink(path)
            return
        }
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) {
                String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name == "." || name == ".." { continue }
            let child = path + "/" + name
            var info = stat()
            if lstat(child, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR {
                removeTree(child)
            } else {
                unlink(child)
            }
        }
        closedir(directory)
        rmdir(path)
    }
}
