/// A YAML node as PyYAML's safe loader composes it, kept with where it stood in the file.
///
/// Scalars stay text: each reader decides what a value means, so nothing is resolved behind its back.
public struct YAMLNode: Sendable {
    public enum Kind: Sendable {
        case scalar(YAMLScalar)
        case sequence([YAMLNode])
        /// Pairs in file order. A key may repeat: PyYAML keeps the last value, and so does ``subscript(_:)``.
        case mapping([(key: YAMLNode, value: YAMLNode)])
    }

    public let kind: Kind
    /// 1-based, as editors count.
    public let line: Int
    public let column: Int

    public init(kind: Kind, line: Int, column: Int) {
        self.kind = kind
        self.line = line
        self.column = column
    }

    public var scalar: YAMLScalar? {
        if case .scalar(let scalar) = kind { return scalar }
        return nil
    }

    public var sequence: [YAMLNode]? {
        if case .sequence(let items) = kind { return items }
        return nil
    }

    public var mapping: [(key: YAMLNode, value: YAMLNode)]? {
        if case .mapping(let pairs) = kind { return pairs }
        return nil
    }

    /// The value of `key` in a mapping; the last one when the key repeats, as PyYAML does.
    public subscript(key: String) -> YAMLNode? {
        mapping?.last { $0.key.scalar?.text == key }?.value
    }

    /// The text of a scalar that is not null.
    public var string: String? {
        guard let scalar, !scalar.isNull else { return nil }
        return scalar.text
    }

    /// YAML's null: `~`, `null` or nothing at all, unquoted and untagged.
    public var isNull: Bool { scalar?.isNull ?? false }

    /// The keys of a mapping that are scalars, each with its node, in file order.
    public var keys: [(name: String, node: YAMLNode)] {
        (mapping ?? []).compactMap { pair in pair.key.scalar.map { ($0.text, pair.key) } }
    }
}

public struct YAMLScalar: Sendable, Equatable {
    public let text: String
    /// Neither quoted nor a block scalar: only such scalars are resolved to null, booleans and numbers.
    public let isPlain: Bool
    /// An explicit tag such as `!!str`, which stops implicit resolution.
    public let tag: String?

    public init(text: String, isPlain: Bool, tag: String?) {
        self.text = text
        self.isPlain = isPlain
        self.tag = tag
    }

    public var isNull: Bool {
        if let tag { return tag == "tag:yaml.org,2002:null" }
        return isPlain && ["", "~", "null", "Null", "NULL"].contains(text)
    }

    /// True when PyYAML's safe loader makes a Python `str` of it: a quoted or block scalar, one tagged `!!str`, or a
    /// plain one that no implicit resolver claims (null, booleans, integers, floats, timestamps, `<<`, `=`).
    public var isString: Bool {
        if let tag { return tag == "tag:yaml.org,2002:str" }
        guard isPlain else { return true }
        if isNull || bool != nil || text == "<<" || text == "=" { return false }
        return !Self.resolvers.contains { text.wholeMatch(of: $0) != nil }
    }

    /// PyYAML 6's implicit resolvers for int, float and timestamp (yaml/resolver.py), as written there.
    nonisolated(unsafe) private static let resolvers: [Regex<Substring>] = [
        #/[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+/#,
        #/[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)/#,
        #/[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?/#,
    ]

    /// YAML 1.1's booleans, as PyYAML resolves them; nil for anything else.
    public var bool: Bool? {
        guard isPlain, tag == nil else { return nil }
        switch text {
        case "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON": return true
        case "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF": return false
        default: return nil
        }
    }
}
