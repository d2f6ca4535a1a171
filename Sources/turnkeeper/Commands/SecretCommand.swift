import ArgumentParser
import TurnkeeperCredentials

struct SecretCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "secret",
        abstract: "Make and inspect shared TURN secrets.",
        subcommands: [Generate.self, Fingerprint.self]
    )

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Generate a new secret from OpenSSL's RAND_bytes.",
            discussion: """
                The secret is \(TurnSecret.generatedLength) characters of A-Z, a-z and 0-9 (about \
                \(Int(Double(TurnSecret.generatedLength) * 5.954)) bits), which coturn's config, YAML, SQL and \
                Redis all take without quoting.

                With --out it is written to FILE atomically, mode 0600, and only its fingerprint is printed. \
                Without --out it is printed to standard output, for piping.

                Examples:
                  turnkeeper secret generate --out /etc/turnkeeper/secret
                  turnkeeper secret generate --out /etc/turnkeeper/secret --force
                """
        )

        @Option(name: .long, help: ArgumentHelp("Write the secret to this file (mode 0600).", valueName: "file"))
        var out: String?

        @Flag(name: .long, help: "Replace the file if it exists, keeping its owner and group.")
        var force = false

        func validate() throws {
            if force && out == nil {
                throw ValidationError("--force only applies with --out FILE.")
            }
        }

        func run() throws {
            let secret = try TurnSecret.generate()
            if let out {
                try SecretFile.write(secret, to: out, overwrite: force)
                print("wrote a new secret to \(out) (fingerprint \(secret.fingerprint), mode 0600)")
            } else {
                secret.withExposedBytes { print(String(decoding: $0, as: UTF8.self)) }
            }
        }
    }

    struct Fingerprint: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a secret file's fingerprint, to compare two hosts without showing the secret.",
            discussion: "The fingerprint is the first 8 hex digits of the secret's SHA-256."
        )

        @OptionGroup var secrets: SecretFileOptions

        func run() throws {
            for loaded in try secrets.load() {
                print("\(loaded.secret.fingerprint)  \(loaded.path)")
            }
        }
    }
}

/// `--secret-file`, shared by every command that signs or checks credentials.
struct SecretFileOptions: ParsableArguments {
    @Option(
        name: .customLong("secret-file"),
        help: ArgumentHelp(
            "A file holding the shared secret on one line. Repeat it to give several.",
            valueName: "file"
        )
    )
    var paths: [String] = []

    func validate() throws {
        if paths.isEmpty {
            throw ValidationError("Missing --secret-file FILE: the file holding the secret Synapse and coturn share.")
        }
    }

    /// Reads every file, printing warnings (world-readable, short) to standard error.
    func load() throws -> [SecretFile.Loaded] {
        try paths.map { path in
            let loaded = try SecretFile.read(path)
            loaded.warnings.forEach(Console.warning)
            return loaded
        }
    }
}
