public import TurnkeeperConsumers
public import TurnkeeperCredentials

extension Configuration {
    /// An app besides Synapse that signs TURN credentials with the same secret (docs/consumers.md). Each one
    /// is switched in step 4, after Synapse, in the order turnkeeper.yaml lists them; the old secret is retired
    /// only when all have switched and the longest of their credential lifetimes has passed.
    public struct Consumer: Sendable, Equatable {
        /// Unique among the consumers, and never "synapse": progress is saved under it.
        public var name: String
        public var kind: Kind

        public init(name: String, kind: Kind) {
            self.name = name
            self.kind = kind
        }

        public enum Kind: Sendable, Equatable {
            case prosody(Prosody)
            case file(File)

            /// The word turnkeeper.yaml uses.
            public var name: String {
                switch self {
                case .prosody: "prosody"
                case .file: "file"
                }
            }
        }

        /// How long a credential this consumer hands out stays valid: what the retirement waits for.
        public var credentialLifetime: SynapseDuration {
            switch kind {
            case .prosody(let prosody): prosody.credentialLifetime
            case .file(let file): file.credentialLifetime
            }
        }

        /// "prosody consumer xmpp", for messages.
        public var label: String { "\(kind.name) consumer \(name)" }

        /// Prosody 0.12 with mod_turn_external: turnkeeper owns an included file of `turn_external_*` options
        /// and makes the running Prosody load it through its admin socket (`prosodyctl shell`), no restart.
        public struct Prosody: Sendable, Equatable {
            /// The file turnkeeper owns, read by an `Include` of Prosody's config (Debian: conf.d/*.cfg.lua).
            public var configFile: String
            /// prosodyctl and its leading arguments, such as [prosodyctl, --config, /etc/prosody/prosody.cfg.lua].
            public var prosodyctl: [String]
            /// The VirtualHosts whose credentials are checked after the switch.
            public var hosts: [String]
            /// The group Prosody runs as; the file is 0640 with it.
            public var group: String
            /// `turn_external_host`, `_port`, `_tls_port`, `_tcp`, `_user`: what Prosody advertises.
            public var turnHost: String
            public var turnPort: Int
            public var tlsPort: Int?
            public var tcp: Bool
            public var turnUser: String?
            /// `turn_external_ttl`.
            public var credentialLifetime: SynapseDuration

            public init(
                configFile: String = "/etc/prosody/conf.d/turnkeeper.cfg.lua", prosodyctl: [String] = ["prosodyctl"],
                hosts: [String], group: String = "prosody", turnHost: String, turnPort: Int = 3478,
                tlsPort: Int? = nil, tcp: Bool = false, turnUser: String? = nil,
                credentialLifetime: SynapseDuration = .days(1)
            ) {
                self.configFile = configFile
                self.prosodyctl = prosodyctl
                self.hosts = hosts
                self.group = group
                self.turnHost = turnHost
                self.turnPort = turnPort
                self.tlsPort = tlsPort
                self.tcp = tcp
                self.turnUser = turnUser
                self.credentialLifetime = credentialLifetime
            }
        }

        /// Any other app: a file written from a template, then a command (a restart or reload), then an
        /// optional check that the app hands out credentials signed with the new secret.
        public struct File: Sendable, Equatable {
            /// The file turnkeeper writes (root-owned, `mode`, `group`).
            public var path: String
            /// The template, holding `{{turn_secret}}` where the secret goes.
            public var template: String
            public var format: Format
            /// The group of the app that reads the file; nil keeps root's.
            public var group: String?
            public var mode: UInt32
            /// argv, run without a shell and with an empty environment; nil when the app reads the file itself.
            public var command: [String]?
            public var commandTimeout: SynapseDuration
            /// After the command: argv whose standard output, or a URL whose answer, holds credentials the app
            /// hands out now (JSON with username and credential or password); they must be signed with the new
            /// secret.
            public var verifyCommand: [String]?
            public var verifyURL: String?
            public var credentialLifetime: SynapseDuration

            public typealias Format = SecretTemplate.Format

            public init(
                path: String, template: String, format: Format, group: String? = nil, mode: UInt32 = 0o600,
                command: [String]? = nil, commandTimeout: SynapseDuration = .seconds(120),
                verifyCommand: [String]? = nil, verifyURL: String? = nil, credentialLifetime: SynapseDuration
            ) {
                self.path = path
                self.template = template
                self.format = format
                self.group = group
                self.mode = mode
                self.command = command
                self.commandTimeout = commandTimeout
                self.verifyCommand = verifyCommand
                self.verifyURL = verifyURL
                self.credentialLifetime = credentialLifetime
            }
        }
    }

    /// The name Synapse's progress is saved under, among the consumers' names (which may never take it).
    public static let synapseConsumer = "synapse"
}
