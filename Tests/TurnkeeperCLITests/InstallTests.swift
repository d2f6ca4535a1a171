import Foundation
import Glibc
import TestSupport
import Testing

/// scripts/install.sh into a staging directory, and systemd's own checks of the unit it installs.
@Suite("Install and systemd unit", .mayBlock, .tags(.live))
struct InstallTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    @Test("install.sh stages binary, unit, docs and an example config; uninstall keeps config; unit verifies")
    func installVerifyUninstall() throws {
        let stage = try TemporaryDirectory()
        defer { stage.remove() }
        let install = try ProcessRunner.run(
            "/bin/bash",
            [Self.repository + "/scripts/install.sh", "--destdir", stage.path, "--binary", TurnkeeperBinary.path],
            timeout: .seconds(60))
        #expect(install.status == 0, "\(install)")
        let root = stage.path
        #expect(permissions(of: root + "/usr/local/bin/turnkeeper") == 0o755)
        #expect(permissions(of: root + "/usr/local/lib/systemd/system/turnkeeper.service") == 0o644)
        #expect(permissions(of: root + "/etc/turnkeeper") == 0o700)
        #expect(permissions(of: root + "/etc/turnkeeper/turnkeeper.yaml") == 0o600)
        #expect(FileManager.default.fileExists(atPath: root + "/usr/local/share/doc/turnkeeper/operations.md"))

        // The installed unit passes `systemd-analyze verify` (run on a copy whose ExecStart names the
        // staged binary, since verify checks that the command exists).
        let unit = try String(
            contentsOfFile: root + "/usr/local/lib/systemd/system/turnkeeper.service", encoding: .utf8)
        #expect(unit.contains("ExecStart=/usr/local/bin/turnkeeper run --config /etc/turnkeeper/turnkeeper.yaml"))
        let probe = try stage.write(
            "turnkeeper.service",
            unit.replacingOccurrences(of: "/usr/local/bin/turnkeeper", with: root + "/usr/local/bin/turnkeeper"),
            mode: 0o644)
        let analyze = try ProcessRunner.which("systemd-analyze", package: "systemd")
        let verify = try ProcessRunner.run(analyze, ["verify", probe], timeout: .seconds(60))
        #expect(verify.status == 0 && verify.stderr.isEmpty && verify.stdout.isEmpty, "\(verify)")
        // The exposure score recorded in docs/operations.md: a change that weakens the sandbox shows here.
        let security = try ProcessRunner.run(analyze, ["security", "--offline=true", probe], timeout: .seconds(60))
        let score = security.stdout.split(separator: "\n").first { $0.contains("Overall exposure level") }
            .flatMap { line in line.split(separator: " ").compactMap { Double($0) }.first }
        let exposure = try #require(score, "\(security)")
        #expect(exposure <= 2.5, "exposure \(exposure):\n\(security.stdout)")
        let operations = try String(contentsOfFile: Self.repository + "/docs/operations.md", encoding: .utf8)
        #expect(operations.contains("exposure level \(String(format: "%.1f", exposure))"))

        // An admin's edited configuration survives a reinstall (an upgrade).
        _ = try stage.write("etc/turnkeeper/turnkeeper.yaml", "# mine\n")
        let upgrade = try ProcessRunner.run(
            "/bin/bash",
            [Self.repository + "/scripts/install.sh", "--destdir", stage.path, "--binary", TurnkeeperBinary.path],
            timeout: .seconds(60))
        #expect(upgrade.status == 0 && upgrade.stdout.contains("kept the existing"))
        #expect(try String(contentsOfFile: root + "/etc/turnkeeper/turnkeeper.yaml", encoding: .utf8) == "# mine\n")

        let uninstall = try ProcessRunner.run(
            "/bin/bash", [Self.repository + "/scripts/install.sh", "--destdir", stage.path, "--uninstall"],
            timeout: .seconds(60))
        #expect(uninstall.status == 0, "\(uninstall)")
        #expect(!FileManager.default.fileExists(atPath: root + "/usr/local/bin/turnkeeper"))
        #expect(!FileManager.default.fileExists(atPath: root + "/usr/local/lib/systemd/system/turnkeeper.service"))
        #expect(FileManager.default.fileExists(atPath: root + "/etc/turnkeeper/turnkeeper.yaml"))
    }

    @Test("Every unit in systemd/ passes systemd-analyze verify")
    func verifyAll() throws {
        let analyze = try ProcessRunner.which("systemd-analyze", package: "systemd")
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let units = try FileManager.default.contentsOfDirectory(atPath: Self.repository + "/systemd")
            .filter { $0.hasSuffix(".service") }
        #expect(!units.isEmpty)
        for name in units {
            let text = try String(contentsOfFile: Self.repository + "/systemd/" + name, encoding: .utf8)
            let copy = try directory.write(
                name, text.replacingOccurrences(of: "/usr/local/bin/turnkeeper", with: TurnkeeperBinary.path),
                mode: 0o644)
            let verify = try ProcessRunner.run(analyze, ["verify", copy], timeout: .seconds(60))
            #expect(verify.status == 0 && verify.stderr.isEmpty, "\(name): \(verify)")
        }
    }
}
