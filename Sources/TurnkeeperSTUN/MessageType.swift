import Synchronization
import TurnkeeperCrypto

/// A STUN/TURN method (RFC 8489 §5, RFC 8656 §17).
public struct STUNMethod: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue & 0x0FFF }

    public static let binding = STUNMethod(rawValue: 0x001)
    public static let allocate = STUNMethod(rawValue: 0x003)
    public static let refresh = STUNMethod(rawValue: 0x004)
    public static let send = STUNMethod(rawValue: 0x006)
    public static let data = STUNMethod(rawValue: 0x007)
    public static let createPermission = STUNMethod(rawValue: 0x008)
    public static let channelBind = STUNMethod(rawValue: 0x009)

    public var description: String {
        switch self {
        case .binding: "Binding"
        case .allocate: "Allocate"
        case .refresh: "Refresh"
        case .send: "Send"
        case .data: "Data"
        case .createPermission: "CreatePermission"
        case .channelBind: "ChannelBind"
        default: "method 0x\(String(rawValue, radix: 16))"
        }
    }
}

/// Request, indication, success or error response.
public enum STUNClass: UInt16, Sendable, Hashable {
    case request = 0
    case indication = 1
    case successResponse = 2
    case errorResponse = 3
}

/// Method and class, interleaved into 14 bits as RFC 8489 §5 lays them out.
public struct STUNMessageType: Sendable, Hashable, CustomStringConvertible {
    public var method: STUNMethod
    public var messageClass: STUNClass

    public init(_ method: STUNMethod, _ messageClass: STUNClass) {
        self.method = method
        self.messageClass = messageClass
    }

    public init(rawValue: UInt16) {
        let m = rawValue & 0x000F | (rawValue & 0x00E0) >> 1 | (rawValue & 0x3E00) >> 2
        let c = (rawValue & 0x0010) >> 4 | (rawValue & 0x0100) >> 7
        self.init(STUNMethod(rawValue: m), STUNClass(rawValue: c)!)
    }

    public var rawValue: UInt16 {
        let m = method.rawValue
        let c = messageClass.rawValue
        return m & 0x000F | (m & 0x0070) << 1 | (m & 0x0F80) << 2 | (c & 0x1) << 4 | (c & 0x2) << 7
    }

    public var description: String {
        switch messageClass {
        case .request: "\(method) request"
        case .indication: "\(method) indication"
        case .successResponse: "\(method) success response"
        case .errorResponse: "\(method) error response"
        }
    }
}

/// The 96-bit transaction ID that pairs a response with its request.
public struct TransactionID: Sendable, Hashable, CustomStringConvertible {
    public let bytes: [UInt8]

    /// `bytes` must be 12 long.
    public init(_ bytes: [UInt8]) {
        precondition(bytes.count == 12, "a transaction ID is 12 bytes")
        self.bytes = bytes
    }

    /// A fresh ID that an off-path attacker cannot guess: from OpenSSL's DRBG (`RAND_bytes`, seeded from the
    /// kernel), 64 IDs' worth a draw. Each `RAND_bytes` call asks `getpid` (its fork check, a system call), and a
    /// `getrandom` a byte made a dozen per request (both measured). turnkeeper never forks without exec, so no
    /// two processes share a draw. Should libcrypto ever fail, from the kernel's CSPRNG directly.
    public static func random() -> TransactionID {
        if let bytes = pool.withLock({ $0.take(12) }) { return TransactionID(bytes) }
        var generator = SystemRandomNumberGenerator()
        let high = generator.next()
        let low = generator.next()
        return TransactionID((0..<12).map { UInt8(truncatingIfNeeded: ($0 < 8 ? high : low) >> (8 * UInt64($0 % 8))) })
    }

    private static let pool = Mutex(RandomPool())

    /// Random bytes drawn ahead, each handed out once.
    struct RandomPool: ~Copyable {
        private var bytes: [UInt8] = []
        private var next = 0

        mutating func take(_ count: Int) -> [UInt8]? {
            if next + count > bytes.count {
                guard let drawn = try? SecureRandom.bytes(64 * 12) else { return nil }
                bytes = drawn
                next = 0
            }
            defer { next += count }
            return Array(bytes[next..<next + count])
        }
    }

    public var description: String { bytes.map { String($0, radix: 16).leftPadded(2) }.joined() }
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
