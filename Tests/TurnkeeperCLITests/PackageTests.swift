import Foundation
import TestSupport
import Testing

/// The .deb that scripts/deb.sh builds (scripts/test.sh builds it before the tests, into dist/): what it
/// installs where, what it depends on, and that its binary needs no Swift toolchain.
@Suite("The Debian package", .mayBlock)
struct PackageTests {
    static func package() throws -> String {
        let dist = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../dist")
            .standardized.path
        let debs = ((try? FileManager.default.contentsOfDirectory(atPath: dist)) ?? []).filter { $0.hasSuffix(".deb") }
        guard let deb = debs.sorted().last else {
            throw TestFailure("no .deb in \(dist): scripts/test.sh builds it with scripts/deb.sh")
        }
        return dist + "/" + deb
    }

    @Test("It installs the binary, the unit, the conffile, docs, a man page per command and three completions")
    func contents() throws {
        let deb = try Self.package()
        let listing = try ProcessRunner.run("/usr/bin/dpkg-deb", ["--contents", deb])
        #expect(listing.status == 0, "\(listing)")
        for path in [
            "./usr/bin/turnkeeper", "./lib/systemd/system/turnkeeper.service", "./etc/turnkeeper/turnkeeper.yaml",
            "./usr/share/doc/turnkeeper/copyright", "./usr/share/doc/turnkeeper/README.md.gz",
            "./usr/share/doc/turnkeeper/consumers.md.gz", "./usr/share/man/man1/turnkeeper.1.gz",
            "./usr/share/man/man1/turnkeeper-rotate.1.gz", "./usr/share/man/man1/turnkeeper-credentials-mint.1.gz",
            "./usr/share/man/man1/turnkeeper-init.1.gz",
            "./usr/share/bash-completion/completions/turnkeeper", "./usr/share/zsh/vendor-completions/_turnkeeper",
            "./usr/share/fish/vendor_completions.d/turnkeeper.fish", "./usr/share/lintian/overrides/turnkeeper",
        ] {
            #expect(listing.stdout.contains(" \(path)\n"), "\(path) missing:\n\(listing.stdout)")
        }
        // The configuration is root's alone, and a conffile (kept on upgrade and remove, gone on purge).
        let conffile = listing.stdout.split(separator: "\n").first {
            $0.hasSuffix(" ./etc/turnkeeper/turnkeeper.yaml")
        }
        #expect(conffile?.hasPrefix("-rw------- root/root") == true, "\(conffile ?? "")")
        let control = try ProcessRunner.run("/usr/bin/dpkg-deb", ["--info", deb])
        #expect(control.stdout.contains("Depends: libc6"), "\(control)")
        // The unit's ExecReload runs /bin/kill, which a minimal Debian lacks without procps.
        #expect(control.stdout.contains(", procps\n"), "\(control)")
        #expect(!control.stdout.lowercased().contains("swift"), "\(control)")
        let conffiles = try ProcessRunner.run("/usr/bin/dpkg-deb", ["--info", deb, "conffiles"])
        #expect(conffiles.stdout == "/etc/turnkeeper/turnkeeper.yaml\n", "\(conffiles)")
    }

    @Test("Its binary links no Swift library: only Debian's own, and --version runs without the toolchain")
    func noToolchain() throws {
        let deb = try Self.package()
        let root = try TemporaryDirectory("turnkeeper-deb")
        defer { root.remove() }
        let extracted = try ProcessRunner.run("/usr/bin/dpkg-deb", ["--extract", deb, root.path])
        #expect(extracted.status == 0, "\(extracted)")
        let binary = root.file("usr/bin/turnkeeper")
        let libraries = try ProcessRunner.run("/usr/bin/ldd", [binary])
        #expect(libraries.status == 0, "\(libraries)")
        #expect(!libraries.stdout.contains("swift") && !libraries.stdout.contains("not found"), "\(libraries)")
        // With no path that could lead to the toolchain (/opt/swift here).
        let version = try ProcessRunner.run(
            "/usr/bin/env", ["-i", "PATH=/usr/bin:/bin", binary, "--version"])
        #expect(version.status == 0 && !version.stdout.isEmpty, "\(version)")
    }
}
