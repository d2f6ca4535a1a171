public import TurnkeeperCore

/// A secret kept in a file of its own: one line, the value, and an optional trailing newline.
public enum SecretFile {
    /// A secret read from a file, with anything the admin should hear about it.
    public struct Loaded: Sendable {
        public let secret: TurnSecret
        public let path: String
        /// Problems that do not stop us: the file is readable by others, the secret is short.
        public let warnings: [String]
    }

    public static func read(_ path: String) throws(TurnkeeperError) -> Loaded {
        let file = try FileContents.read(path, limit: 4096)
        var bytes = file.bytes
        // One trailing newline, as `echo` and editors leave it; "\r\n" counts as one.
        if bytes.last == 0x0A {
            bytes.removeLast()
            if bytes.last == 0x0D { bytes.removeLast() }
        }
        if let problem = TurnSecret.problem(in: bytes, source: path) {
            throw problem
        }
        let secret = TurnSecret(trustedBytes: bytes)
        var warnings: [String] = []
        if file.isWorldReadable {
            let mode = String(file.permissions, radix: 8)
            warnings.append(
                "\(path) is readable by every user on this machine (mode \(mode)); run `chmod 600 \(path)`, "
                    + "or 640 with the reading service's group."
            )
        }
        if secret.length < TurnSecret.minimumStrongLength {
            warnings.append(
                "the secret in \(path) has \(secret.length) characters (about \(secret.estimatedBits) bits), "
                    + "under 256 bits; `turnkeeper secret generate` makes \(TurnSecret.generatedLength)."
            )
        }
        return Loaded(secret: secret, path: path, warnings: warnings)
    }

    /// Reads the root key both hosts of a two-host setup derive every epoch's secret from. Stricter than a secret
    /// file: whoever reads or guesses it can compute every secret, past and future, so a key under 256 bits, or one
    /// that users other than its owner may read, is refused.
    public static func readRootKey(_ path: String) throws(TurnkeeperError) -> TurnSecret {
        let loaded = try read(path)
        let file = try FileContents.read(path, limit: 4096)
        let fix =
            "Make a key with `turnkeeper secret generate --out \(path) --force` on one host, copy it to the other "
            + "(docs/separate-turn-host.md, root key rotation)."
        guard loaded.secret.length >= TurnSecret.minimumStrongLength else {
            throw TurnkeeperError(
                .invalidSecret,
                "the root key in \(path) has \(loaded.secret.length) characters (about \(loaded.secret.estimatedBits) "
                    + "bits), under 256 bits: anyone who guesses it computes every epoch's secret. \(fix)")
        }
        guard file.permissions & 0o077 == 0 else {
            throw TurnkeeperError(
                .invalidSecret,
                "the root key \(path) may be read by users other than its owner (mode "
                    + "\(String(file.permissions, radix: 8))): any of them could compute every epoch's secret. Run "
                    + "`chmod 600 \(path)`.")
        }
        return loaded.secret
    }

    /// Writes `secret` and a newline to `path` atomically, mode 0600 for a new file.
    /// An existing file keeps its owner and group, and loses any permission for others.
    public static func write(_ secret: TurnSecret, to path: String, overwrite: Bool) throws(TurnkeeperError) {
        let contents = secret.withExposedBytes { $0 + [0x0A] }
        try AtomicFile.write(
            contents,
            to: path,
            permissions: 0o600,
            maximumPermissions: 0o640,
            existing: overwrite ? .replace : .refuse
        )
    }
}
