import TurnkeeperCore

/// A STUN attribute type (RFC 8489 §18.3, RFC 8656 §18).
public struct STUNAttributeType: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let mappedAddress = Self(rawValue: 0x0001)
    /// RFC 5780: ask the server to answer from its other address and/or port.
    public static let changeRequest = Self(rawValue: 0x0003)
    public static let username = Self(rawValue: 0x0006)
    public static let messageIntegrity = Self(rawValue: 0x0008)
    public static let errorCode = Self(rawValue: 0x0009)
    public static let unknownAttributes = Self(rawValue: 0x000A)
    public static let channelNumber = Self(rawValue: 0x000C)
    public static let lifetime = Self(rawValue: 0x000D)
    public static let xorPeerAddress = Self(rawValue: 0x0012)
    public static let data = Self(rawValue: 0x0013)
    public static let realm = Self(rawValue: 0x0014)
    public static let nonce = Self(rawValue: 0x0015)
    public static let xorRelayedAddress = Self(rawValue: 0x0016)
    public static let requestedAddressFamily = Self(rawValue: 0x0017)
    public static let evenPort = Self(rawValue: 0x0018)
    public static let requestedTransport = Self(rawValue: 0x0019)
    public static let dontFragment = Self(rawValue: 0x001A)
    public static let messageIntegritySHA256 = Self(rawValue: 0x001C)
    public static let passwordAlgorithm = Self(rawValue: 0x001D)
    public static let userhash = Self(rawValue: 0x001E)
    public static let xorMappedAddress = Self(rawValue: 0x0020)
    public static let reservationToken = Self(rawValue: 0x0022)
    public static let passwordAlgorithms = Self(rawValue: 0x8002)
    public static let alternateDomain = Self(rawValue: 0x8003)
    public static let software = Self(rawValue: 0x8022)
    public static let alternateServer = Self(rawValue: 0x8023)
    public static let fingerprint = Self(rawValue: 0x8028)
    /// RFC 5780: where a response was sent from, and the server's other address.
    public static let responseOrigin = Self(rawValue: 0x802B)
    public static let otherAddress = Self(rawValue: 0x802C)

    /// Types below 0x8000 must be understood; a server answers 420 when it does not.
    public var isComprehensionRequired: Bool { rawValue < 0x8000 }

    public var description: String {
        let names: [UInt16: String] = [
            0x0001: "MAPPED-ADDRESS", 0x0006: "USERNAME", 0x0008: "MESSAGE-INTEGRITY", 0x0009: "ERROR-CODE",
            0x000A: "UNKNOWN-ATTRIBUTES", 0x000C: "CHANNEL-NUMBER", 0x000D: "LIFETIME", 0x0012: "XOR-PEER-ADDRESS",
            0x0013: "DATA", 0x0014: "REALM", 0x0015: "NONCE", 0x0016: "XOR-RELAYED-ADDRESS",
            0x0017: "REQUESTED-ADDRESS-FAMILY", 0x0018: "EVEN-PORT", 0x0019: "REQUESTED-TRANSPORT",
            0x001A: "DONT-FRAGMENT", 0x001C: "MESSAGE-INTEGRITY-SHA256", 0x001D: "PASSWORD-ALGORITHM",
            0x001E: "USERHASH", 0x0020: "XOR-MAPPED-ADDRESS", 0x0022: "RESERVATION-TOKEN",
            0x8002: "PASSWORD-ALGORITHMS", 0x8003: "ALTERNATE-DOMAIN", 0x8022: "SOFTWARE", 0x8023: "ALTERNATE-SERVER",
            0x8028: "FINGERPRINT",
        ]
        return names[rawValue] ?? "attribute 0x\(String(rawValue, radix: 16).leftPadded(4))"
    }
}

/// One type-length-value attribute, its value unpadded.
public struct STUNAttribute: Sendable, Hashable {
    public var type: STUNAttributeType
    public var value: [UInt8]

    public init(_ type: STUNAttributeType, _ value: [UInt8]) {
        self.type = type
        self.value = value
    }
}

/// ERROR-CODE: a three-digit code and a reason phrase.
public struct STUNErrorCode: Sendable, Hashable, CustomStringConvertible {
    public let code: Int
    /// As the server sent it: print it only through ``description`` or ``ServerText``.
    public let reason: String

    public init(code: Int, reason: String) {
        self.code = code
        self.reason = reason
    }

    /// The code and its phrase: the server's, escaped and bounded, with the NUL padding coturn 4.6.1 sends
    /// stripped; the RFC's when the server sends none (coturn 4.10 and later send none by default).
    public var description: String {
        var phrase = Substring(reason)
        while let last = phrase.last, last == "\u{0}" || last == " " { phrase.removeLast() }
        if phrase.isEmpty { phrase = Substring(Self.standardPhrases[code] ?? "") }
        return phrase.isEmpty ? "\(code)" : "\(code) \(ServerText.escaped(String(phrase)))"
    }

    /// RFC 8489 §14.8 and RFC 8656 §19's reason phrases.
    public static let standardPhrases: [Int: String] = [
        300: "Try Alternate", 400: "Bad Request", 401: "Unauthenticated", 403: "Forbidden",
        405: "Mobility Forbidden", 420: "Unknown Attribute", 437: "Allocation Mismatch", 438: "Stale Nonce",
        440: "Address Family not Supported", 441: "Wrong Credentials", 442: "Unsupported Transport Protocol",
        443: "Peer Address Family Mismatch", 486: "Allocation Quota Reached", 500: "Server Error",
        508: "Insufficient Capacity",
    ]

    public static let tryAlternate = 300
    public static let badRequest = 400
    public static let unauthorized = 401
    public static let forbidden = 403
    public static let mobilityForbidden = 405
    public static let unknownAttribute = 420
    public static let allocationMismatch = 437
    public static let staleNonce = 438
    public static let addressFamilyNotSupported = 440
    public static let wrongCredentials = 441
    public static let unsupportedTransportProtocol = 442
    public static let peerAddressFamilyMismatch = 443
    public static let allocationQuotaReached = 486
    public static let serverError = 500
    public static let insufficientCapacity = 508
}

/// The transport a relay should use, in REQUESTED-TRANSPORT (IANA protocol numbers).
public enum RelayTransport: UInt8, Sendable {
    case udp = 17
    case tcp = 6
}
