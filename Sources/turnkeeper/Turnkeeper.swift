import ArgumentParser
import CSystemShims
import Glibc
import TurnkeeperCore
import TurnkeeperExecution

@main
struct Turnkeeper: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "turnkeeper",
        abstract: "Keeps the TURN secret that Synapse and coturn share: generated, rotated, checked.",
        discussion: """
            Synapse hands Matrix clients time-limited TURN credentials signed with a secret it shares with \
            coturn. When the two copies drift apart, calls ring and never connect. turnkeeper makes the secret, \
            mints and verifies credentials exactly as Synapse and coturn do, and says plainly what is wrong.

            Exit status: 0 ok, 1 a check failed, 2 usage or configuration error.
            """,
        version: "0.1.0",
        subcommands: [
            InitCommand.self, SecretCommand.self, CredentialsCommand.self, ProbeCommand.self, RotateCommand.self,
            StatusCommand.self,
            CheckCommand.self, RunCommand.self, AuditCommand.self, LoadCommand.self, CallCommand.self,
            CallTestCommand.self,
            ProvisionCommand.self,
        ]
    )

    static func main() async {
        // Before any task exists: async work runs on NIO's event loops, so an idle daemon sleeps (no Dispatch
        // worker monitor waking it each second).
        NIOGlobalExecutor.install()
        // Line-buffered even when stdout is a pipe or the journal, so lines arrive as they happen.
        turnkeeper_stdout_line_buffered()
        // Every command may hold a secret: no core file, and no process of the same user reads our memory or
        // environment through /proc or ptrace.
        if turnkeeper_make_undumpable() != 0 {
            Console.warning(
                "cannot make this process non-dumpable (prctl: \(String(cString: strerror(errno)))); a core dump "
                    + "could hold secrets. Set LimitCORE=0 for the service.")
        }
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let error as TurnkeeperError {
            Console.error(error.reason)
            Glibc.exit(exitStatus(for: error.code))
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                print(fullMessage(for: error))
                Glibc.exit(0)
            }
            if code == .failure {
                // ExitCode.failure: the command already reported the failed check. Any other error (a TURN
                // client's, a resolver's) still says what happened, escaped: it may carry server text.
                if !(error is ExitCode) { Console.error(ServerText.escaped("\(error)", limit: 2000)) }
                Glibc.exit(1)
            }
            let message = fullMessage(for: error)
            if !message.isEmpty { Console.write(message + "\n") }
            Glibc.exit(2)
        }
    }
}

/// Where commands say things to people. Nothing passed here may hold a secret.
enum Console {
    static func error(_ message: String) { write("turnkeeper: error: \(message)\n") }
    static func warning(_ message: String) { write("turnkeeper: warning: \(message)\n") }
    static func note(_ message: String) { write("turnkeeper: \(message)\n") }

    /// Writes to standard error, unbuffered.
    static func write(_ text: String) {
        var text = text
        text.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = Glibc.write(2, bytes.baseAddress! + offset, bytes.count - offset)
                if written <= 0 { if written < 0 && errno == EINTR { continue }; return }
                offset += written
            }
        }
    }
}

/// 0 ok, 1 something was tried and failed (a check, a store, a restart, a lock held), 2 usage or
/// configuration: nothing was tried.
func exitStatus(for code: TurnkeeperError.Code) -> Int32 {
    switch code {
    case .invalidArgument, .unreadableFile, .invalidSecret, .invalidConfiguration, .unwritableFile, .cryptoFailure: 2
    default: 1
    }
}
