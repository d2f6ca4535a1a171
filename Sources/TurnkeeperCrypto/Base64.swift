/// RFC 4648 base64 with the standard alphabet and `=` padding, as Synapse and coturn use for passwords.
public enum Base64 {
    @usableFromInline
    static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// The encoded length of `count` bytes.
    @inlinable
    public static func encodedLength(_ count: Int) -> Int { (count + 2) / 3 * 4 }

    /// Encodes `input` into `output`, which must hold ``encodedLength(_:)`` bytes. Returns the bytes written.
    @inlinable
    public static func encode(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableBufferPointer<UInt8>) -> Int {
        let length = encodedLength(input.count)
        precondition(output.count >= length, "base64 output buffer too small")
        return alphabet.withUnsafeBufferPointer { table in
            var i = 0
            var o = 0
            while i + 3 <= input.count {
                let v = UInt32(input[i]) << 16 | UInt32(input[i + 1]) << 8 | UInt32(input[i + 2])
                output[o] = table[Int(v >> 18 & 63)]
                output[o + 1] = table[Int(v >> 12 & 63)]
                output[o + 2] = table[Int(v >> 6 & 63)]
                output[o + 3] = table[Int(v & 63)]
                i += 3
                o += 4
            }
            let rest = input.count - i
            if rest > 0 {
                let v = UInt32(input[i]) << 16 | (rest == 2 ? UInt32(input[i + 1]) << 8 : 0)
                output[o] = table[Int(v >> 18 & 63)]
                output[o + 1] = table[Int(v >> 12 & 63)]
                output[o + 2] = rest == 2 ? table[Int(v >> 6 & 63)] : UInt8(ascii: "=")
                output[o + 3] = UInt8(ascii: "=")
                o += 4
            }
            return o
        }
    }

    public static func encode(_ bytes: some Collection<UInt8>) -> String {
        let input = Array(bytes)
        return String(unsafeUninitializedCapacity: encodedLength(input.count)) { output in
            input.withUnsafeBytes { encode($0, into: output) }
        }
    }

    /// Decodes padded standard base64; nil for anything else (wrong length, stray characters, bad padding).
    public static func decode(_ text: some StringProtocol) -> [UInt8]? {
        let input = Array(text.utf8)
        guard input.count % 4 == 0 else { return nil }
        var output: [UInt8] = []
        output.reserveCapacity(input.count / 4 * 3)
        var index = 0
        while index < input.count {
            let isLast = index + 4 == input.count
            var value: UInt32 = 0
            var padding = 0
            for offset in 0..<4 {
                let c = input[index + offset]
                let sextet: UInt8
                if c == UInt8(ascii: "=") {
                    // Padding only at the end, only in the last two places, and nothing after it.
                    guard isLast, offset >= 2 else { return nil }
                    padding += 1
                    sextet = 0
                } else {
                    guard padding == 0, let decoded = sextetValue(c) else { return nil }
                    sextet = decoded
                }
                value = value << 6 | UInt32(sextet)
            }
            output.append(UInt8(value >> 16 & 0xFF))
            if padding < 2 { output.append(UInt8(value >> 8 & 0xFF)) }
            if padding < 1 { output.append(UInt8(value & 0xFF)) }
            index += 4
        }
        return output
    }

    private static func sextetValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): c - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): c - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0") + 52
        case UInt8(ascii: "+"): 62
        case UInt8(ascii: "/"): 63
        default: nil
        }
    }
}
