import ArgumentParser
import FoundationEssentials
import TurnkeeperCore
import TurnkeeperCredentials

struct CredentialsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "credentials",
        abstract: "Mint and verify time-limited TURN REST credentials, exactly as Synapse and coturn do.",
        subcommands: [Mint.self, Verify.self],
        defaultSubcommand: Mint.self
    )

    struct Mint: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Mint a credential for a user, as Synapse's /voip/turnServer does (the default).",
            usage: """
                turnkeeper credentials [mint] --user <user-id> [--secret-file <file> ...]
                         [--ttl <duration>] [--uri <uri> ...] [--json]
                """,
            discussion: """
                username = "<expiry>:<user>", expiry in Unix seconds; password = base64(HMAC-SHA1(secret, \
                username)). coturn with use-auth-secret accepts it until the expiry.

                Examples:
                  turnkeeper credentials --user @alice:example.org \\
                      --secret-file /etc/turnkeeper/secret
                  turnkeeper credentials --user @alice:example.org --secret-file S \\
                      --ttl 30m --uri turn:turn.example.org?transport=udp --json
                """
        )

        @Option(
            help: ArgumentHelp(
                "The Matrix user ID the credential is for (at most \(RESTUsername.maximumUserBytes) bytes, as coturn "
                    + "takes usernames of at most \(RESTUsername.maximumUsernameBytes)).",
                valueName: "user-id"))
        var user: String

        @OptionGroup var secrets: SecretFileOptions

        @Option(
            help: ArgumentHelp(
                "Lifetime, in Synapse's syntax: 30m, 1h, 1d, 1w; a bare number is milliseconds.",
                valueName: "duration"
            )
        )
        var ttl = "1h"

        @Option(
            name: .customLong("uri"),
            help: ArgumentHelp("A TURN URI to list, as turn_uris does. Repeatable.", valueName: "uri"))
        var uris: [String] = []

        @Flag(help: "Print Synapse's JSON: {\"username\", \"password\", \"ttl\", \"uris\"}.")
        var json = false

        func run() throws {
            try RESTUsername.validate(user: user)
            let lifetime = try SynapseDuration(parsing: ttl, source: "--ttl")
            let loaded = try secrets.load()
            guard loaded.count == 1 else {
                throw ValidationError(
                    "Give exactly one --secret-file to mint with; several are for `credentials verify`.")
            }
            let minter = try CredentialMinter(secret: loaded[0].secret)
            let credential = minter.credential(
                user: user, lifetime: lifetime, nowMilliseconds: WallClock.nowMilliseconds())
            guard credential.expiry <= RESTUsername.latestExpiryCoturnAccepts else {
                throw TurnkeeperError(
                    .invalidArgument,
                    "--ttl \"\(ttl)\" makes the credential expire after 2038-01-19 03:14:07 UTC, and coturn reads "
                        + "expiries as signed 32-bit numbers: it would refuse the credential. Use a shorter --ttl "
                        + "(Synapse's default turn_user_lifetime is 1h)."
                )
            }
            let response = TurnServerResponse(credential: credential, lifetime: lifetime, uris: uris)
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                print(String(decoding: try encoder.encode(response), as: UTF8.self))
            } else {
                print("username: \(response.username)")
                print("password: \(response.password)")
                print("ttl:      \(response.ttl) seconds (expires \(WallClock.utcString(seconds: credential.expiry)))")
                for uri in uris { print("uri:      \(uri)") }
                print("secret:   \(minter.fingerprint)")
            }
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a credential against one or more secrets, as coturn would.",
            usage: """
                turnkeeper credentials verify --username <username>
                         --password-file <file> [--secret-file <file> ...]
                """,
            discussion: """
                Says which secret signed it (by fingerprint), whether it has expired, or that no secret \
                matches. Exit status 0 only for a valid, unexpired credential; 1 otherwise.

                Example:
                  turnkeeper credentials verify \\
                      --username 1795712555:@alice:example.org --password-file pw \\
                      --secret-file /etc/turnkeeper/secret --secret-file old-secret
                """
        )

        @Option(help: ArgumentHelp("The username, as a client got it: <expiry>:<user>.", valueName: "username"))
        var username: String

        @Option(
            name: .customLong("password-file"),
            help: ArgumentHelp(
                "A file holding the password (kept out of argv, where every user could read it).", valueName: "file")
        )
        var passwordFile: String

        @OptionGroup var secrets: SecretFileOptions

        func run() throws {
            let password = try FileContents.readValue(passwordFile, what: "the credential's password")
            let loaded = try secrets.load()
            let verifier = try CredentialVerifier(secrets: loaded.map(\.secret))
            let now = WallClock.nowSeconds()
            switch verifier.verify(username: username, password: password, nowSeconds: now) {
            case .valid(let fingerprint, let expiry):
                print(
                    "valid: signed with secret \(fingerprint); coturn accepts it until "
                        + "\(WallClock.utcString(seconds: expiry)) (\(WallClock.spanString(seconds: expiry - now)) from now)."
                )
            case .expired(let fingerprint, let expiry):
                print(
                    "expired: signed with secret \(fingerprint), but it expired at \(WallClock.utcString(seconds: expiry)) "
                        + "(\(WallClock.spanString(seconds: now - expiry)) ago), so coturn refuses it. If it was just "
                        + "minted, the clocks of Synapse's host and coturn's host disagree: check NTP (`timedatectl`)."
                )
                throw ExitCode.failure
            case .noSecretMatched:
                let fingerprints = loaded.map(\.secret.fingerprint).joined(separator: ", ")
                print(
                    "no secret matched: none of the \(loaded.count) secret(s) given (\(fingerprints)) produces this "
                        + "password for this username. Synapse and coturn are using different secrets, or the "
                        + "credential was altered. Compare `turnkeeper secret fingerprint` on both hosts."
                )
                throw ExitCode.failure
            }
        }

    }
}
