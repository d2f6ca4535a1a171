/// An error that says what happened and what to do next.
///
/// Like swift-certificates' errors it carries a stable ``Code`` for programs, a ``reason`` for people,
/// and the source location that raised it, for us. The reason never contains a secret.
public struct TurnkeeperError: Error, Sendable, Hashable, CustomStringConvertible {
    public var code: Code
    /// What happened and what to do next, in plain words.
    public var reason: String
    public var file: String
    public var line: UInt

    public init(_ code: Code, _ reason: String, file: String = #fileID, line: UInt = #line) {
        self.code = code
        self.reason = reason
        self.file = file
        self.line = line
    }

    public var description: String { reason }

    /// Where the error was raised, for debug output only.
    public var sourceLocation: String { "\(file):\(line)" }

    /// Equal by code, as swift-certificates' errors are: the reason is for people, the code for programs.
    public static func == (lhs: TurnkeeperError, rhs: TurnkeeperError) -> Bool { lhs.code == rhs.code }

    public func hash(into hasher: inout Hasher) { hasher.combine(code) }

    /// A stable identifier of the kind of failure. What it means for an exit status is the CLI's business.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String

        private init(_ name: String) { self.name = name }

        public var description: String { name }

        // Usage and configuration: nothing was tried.

        /// A command-line argument is malformed.
        public static let invalidArgument = Code("invalidArgument")
        /// A file we were asked to read is missing, unreadable or malformed.
        public static let unreadableFile = Code("unreadableFile")
        /// A secret is empty or holds characters outside `[A-Za-z0-9]`.
        public static let invalidSecret = Code("invalidSecret")
        /// A configuration file (turnkeeper.yaml, Synapse's, coturn's) says something turnkeeper cannot act on.
        public static let invalidConfiguration = Code("invalidConfiguration")
        /// A file could not be written, or exists and must not be overwritten.
        public static let unwritableFile = Code("unwritableFile")
        /// libcrypto refused an operation.
        public static let cryptoFailure = Code("cryptoFailure")

        // Something was tried and did not work.

        /// A check ran and found a problem.
        public static let checkFailed = Code("checkFailed")
        /// Another turnkeeper holds the state directory's lock.
        public static let lockHeld = Code("lockHeld")
        /// coturn's shared store (Redis, PostgreSQL) did not answer, or answered with an error.
        public static let storeUnreachable = Code("storeUnreachable")
        /// coturn's shared store answered but refused turnkeeper: its login (user, password, database) or a
        /// permission it needs. Starting the store will not help; its settings or grants will.
        public static let storeRefused = Code("storeRefused")
        /// An admin-configured command (a restart) could not run, failed or timed out.
        public static let commandFailed = Code("commandFailed")
        /// A restart was not proven to take effect (coturn with the new file, Synapse answering).
        public static let restartFailed = Code("restartFailed")
        /// Synapse did not answer its health URL after a restart.
        public static let synapseUnhealthy = Code("synapseUnhealthy")
        /// Synapse's client API did not answer as a homeserver does.
        public static let synapseUnreachable = Code("synapseUnreachable")
        /// An allocation or an answer did not prove what a step needs (coturn refused the new secret, Synapse
        /// hands out the old one).
        public static let verificationFailed = Code("verificationFailed")
        /// coturn still accepts a secret turnkeeper retired, or its refusal could not be proven.
        public static let retirementFailed = Code("retirementFailed")
    }
}
