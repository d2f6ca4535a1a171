/// Scalars written for a YAML reader (PyYAML, libyaml): the one place turnkeeper turns text into YAML, for
/// turnkeeper.yaml and for the conf.d file it writes for Synapse.
public enum YAMLText {
    /// `value` double-quoted. Only printable ASCII is written as it is: a quote, a backslash, control
    /// characters, C1 controls, YAML 1.1's extra line breaks (U+0085, U+2028, U+2029) and a BOM would otherwise
    /// end the scalar, be refused, or be folded into a space.
    public static func doubleQuoted(_ value: String) -> String {
        var out = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case _ where scalar.value >= 0x20 && scalar.value < 0x7F: out.unicodeScalars.append(scalar)
            case _ where scalar.value <= 0xFFFF: out += "\\u" + hex(scalar.value, digits: 4)
            default: out += "\\U" + hex(scalar.value, digits: 8)
            }
        }
        return out + "\""
    }

    /// `value` as it is when a reader gets the same string back (letters, digits, `/ . _ - +`, not starting with
    /// `-`, and a string to YAML 1.1's resolvers: no number, boolean, null or date), else double-quoted.
    public static func scalar(_ value: String) -> String {
        let plain =
            YAMLScalar(text: value, isPlain: true, tag: nil).isString
            && value.unicodeScalars.first.map { $0 != "-" } == true
            && value.unicodeScalars.allSatisfy {
                ($0.value >= 0x30 && $0.value <= 0x39) || ($0.value >= 0x41 && $0.value <= 0x5A)
                    || ($0.value >= 0x61 && $0.value <= 0x7A) || "/._-+".unicodeScalars.contains($0)
            }
        return plain ? value : doubleQuoted(value)
    }

    private static func hex(_ value: UInt32, digits: Int) -> String {
        let text = String(value, radix: 16)
        return String(repeating: "0", count: max(0, digits - text.count)) + text
    }
}
