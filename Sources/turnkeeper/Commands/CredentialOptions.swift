public import ArgumentParser
import TurnkeeperCredentialSource
import TurnkeeperCredentials
public import TurnkeeperTURNClient

/// The credential options `probe` and `call` share, and the source they name.
struct CredentialOptions: ParsableArguments {
    @Option(
        name: .customLong("synapse-config"),
        help: ArgumentHelp(
            "Synapse's config file or directory, as given to Synapse's -c. Repeatable.", valueName: "path")
    )
    var synapseConfig: [String] = []

    @Option(
        help: ArgumentHelp(
            "The homeserver's client API base URL, such as https://matrix.example.org.", valueName: "url"))
    var homeserver: String?

    @Option(
        name: .customLong("access-token-file"),
        help: ArgumentHelp("A file holding a Matrix access token (with --homeserver).", valueName: "file")
    )
    var accessTokenFile: String?

    @Option(
        name: .customLong("secret-file"),
        help: ArgumentHelp("Mint credentials from this shared secret.", valueName: "file"))
    var secretFile: String?

    @Option(help: ArgumentHelp("A TURN username, as a client got it (with --password-file).", valueName: "username"))
    var username: String?

    @Option(
        name: .customLong("password-file"), help: ArgumentHelp("A file holding the TURN password.", valueName: "file"))
    var passwordFile: String?

    func validate() throws {
        let sources = [
            secretFile != nil, username != nil || passwordFile != nil, !synapseConfig.isEmpty, homeserver != nil,
        ]
        if sources.filter({ $0 }).count > 1 {
            throw ValidationError(
                "Give one source of credentials: --secret-file, --username with --password-file, --synapse-config, "
                    + "or --homeserver with --access-token-file."
            )
        }
        if (username == nil) != (passwordFile == nil) {
            throw ValidationError("--username and --password-file go together.")
        }
        if (homeserver == nil) != (accessTokenFile == nil) {
            throw ValidationError("--homeserver and --access-token-file go together.")
        }
    }

    /// True when the source lists TURN URIs itself (Synapse's config or its /voip/turnServer).
    var listsURIs: Bool { !synapseConfig.isEmpty || homeserver != nil }

    /// The source the options name; `caFile` is for an https homeserver.
    func source(caFile: String? = nil) -> CredentialSource {
        if let secretFile { return .secretFile(secretFile) }
        if !synapseConfig.isEmpty { return .synapseConfig(synapseConfig) }
        if let homeserver, let accessTokenFile {
            return .homeserver(homeserver, accessTokenFile: accessTokenFile, caFile: caFile)
        }
        if let username, let passwordFile { return .credential(username: username, passwordFile: passwordFile) }
        return .none
    }
}

/// A STUN/TURN URI on the command line. Options declare `transform: TURNURI.parse` as well, so that a bad
/// URI's error says what is wrong and the forms that work, not only that the value is invalid.
extension TURNURI: ExpressibleByArgument {
    public init?(argument: String) {
        guard let uri = try? TURNURI(argument) else { return nil }
        self = uri
    }

    static func parse(_ argument: String) throws -> TURNURI {
        do {
            return try TURNURI(argument)
        } catch {
            throw ValidationError(error.description)
        }
    }
}

/// A duration in Synapse's syntax (`30s`, `5m`, `1h`, or milliseconds) on the command line, shown in help as
/// written.
struct DurationArgument: ExpressibleByArgument, Sendable {
    let text: String
    let duration: SynapseDuration

    init?(argument: String) {
        guard let duration = try? SynapseDuration(parsing: argument) else { return nil }
        self.text = argument
        self.duration = duration
    }

    var defaultValueDescription: String { text }

    /// The same span as a Swift `Duration`.
    var value: Duration { .milliseconds(duration.milliseconds) }
}
