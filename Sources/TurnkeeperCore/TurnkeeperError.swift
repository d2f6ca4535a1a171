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

    /// A stable identifier of the kind of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        /// The process exit status this error maps to: 1 a check failed, 2 usage or configuration.
        public let exitStatus: Int32

        private init(_ name: String, exitStatus: Int32) {
            self.name = name
            self.exitStatus = exitStatus
        }

        public var description: String { name }

        /// A command-line argument is malformed.
        public static let invalidArgument = Code("invalidArgument", exitStatus: 2)
        /// A file we were asked to read is missing, unreadable or malformed.
        public static let unreadableFile = Code("unreadableFile", exitStatus: 2)
        /// A secret is empty or holds characters outside `[A-Za-z0-9]`.
        public static let invalidSecret = Code("invalidSecret", exitStatus: 2)
        /// A configuration file (turnkeeper.yaml, Synapse's, coturn's) says something turnkeeper cannot act on.
        public static let invalidConfiguration = Code("invalidConfiguration", exitStatus: 2)
        /// A file could not be written, or exists and must not be overwritten.
        public static let unwritableFile = Code("unwritableFile", exitStatus: 2)
        /// libcrypto refused an operation.
        public static let cryptoFailure = Code("cryptoFailure", exitStatus: 2)
        /// A check ran and found a problem.
        public static let checkFailed = Code("checkFailed", exitStatus: 1)
    }
}
