public import TurnkeeperCore
public import TurnkeeperCredentials
import TurnkeeperYAML

/// A file consumer's template: the app's config file as the admin wrote it, with a placeholder where the
/// secret goes, written in the quoting of its format.
public struct SecretTemplate: Sendable {
    public enum Format: String, Sendable, CaseIterable {
        case yaml, json, env, plain
    }

    public static let placeholder = "{{turn_secret}}"

    public let bytes: [UInt8]
    public let format: Format
    /// Where the template was read from, for errors.
    public let path: String

    /// Refuses a template without the placeholder: the app would never get the secret.
    public init(bytes: [UInt8], format: Format, path: String) throws(TurnkeeperError) {
        guard Self.ranges(of: Array(Self.placeholder.utf8), in: bytes).first != nil else {
            throw TurnkeeperError(
                .invalidConfiguration,
                "\(path) holds no \(Self.placeholder), so the app would never get the secret. Put it where the secret "
                    + "goes (YAML and JSON: without quotes, turnkeeper writes them).")
        }
        self.bytes = bytes
        self.format = format
        self.path = path
    }

    /// The file with `secret` in place of every placeholder.
    public func render(_ secret: TurnSecret) throws(TurnkeeperError) -> [UInt8] {
        let value = try secret.withExposedBytes { (raw) throws(TurnkeeperError) in try quoted(raw) }
        let needle = Array(Self.placeholder.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + value.count)
        var start = 0
        for range in Self.ranges(of: needle, in: bytes) {
            out += bytes[start..<range.lowerBound]
            out += value
            start = range.upperBound
        }
        out += bytes[start...]
        return out
    }

    private func quoted(_ raw: [UInt8]) throws(TurnkeeperError) -> [UInt8] {
        switch format {
        case .yaml:
            return Array(YAMLText.doubleQuoted(String(decoding: raw, as: UTF8.self)).utf8)
        case .json:
            return Array(Self.jsonString(String(decoding: raw, as: UTF8.self)).utf8)
        case .env, .plain:
            // An environment file's value is not quoted the same way by every reader (systemd, shells, dotenv):
            // only a value that needs no quoting anywhere is written. Generated secrets always are.
            let safe = raw.allSatisfy { TurnSecret.alphabet.contains($0) || Array("._-+/=".utf8).contains($0) }
            guard safe || (format == .plain && !raw.contains(0x0A) && !raw.contains(0x0D)) else {
                throw TurnkeeperError(
                    .invalidSecret,
                    "the secret (adopted from Synapse) holds characters that \(path)'s format \(format.rawValue) "
                        + "cannot carry unquoted; nothing was written. Rotate once without this consumer, or use format "
                        + "yaml or json.")
            }
            return raw
        }
    }

    /// A JSON string: quotes and backslashes escaped, every control character and everything beyond ASCII
    /// as `\uXXXX`, so the file stays ASCII.
    public static func jsonString(_ value: String) -> String {
        var out = "\""
        for unit in value.utf16 {
            switch unit {
            case 0x22: out += "\\\""
            case 0x5C: out += "\\\\"
            case 0x20..<0x7F: out.unicodeScalars.append(Unicode.Scalar(UInt8(unit)))
            default:
                let hex = String(unit, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            }
        }
        return out + "\""
    }

    private static func ranges(of needle: [UInt8], in haystack: [UInt8]) -> [Range<Int>] {
        guard !needle.isEmpty, haystack.count >= needle.count else { return [] }
        var found: [Range<Int>] = []
        var index = 0
        while index <= haystack.count - needle.count {
            if haystack[index] == needle[0] && Array(haystack[index..<(index + needle.count)]) == needle {
                found.append(index..<(index + needle.count))
                index += needle.count
            } else {
                index += 1
            }
        }
        return found
    }
}
