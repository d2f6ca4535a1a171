public import TurnkeeperCore
import TurnkeeperCrypto

/// The client side of SCRAM-SHA-256 (RFC 5802, RFC 7677), PostgreSQL's default login. The server proves it
/// knows the password too: a server whose final signature is wrong is refused, even after it said "ok".
/// No channel binding (`n,,`); the password is not SASLprep-normalised (the same for ASCII passwords).
public struct SCRAMClient: Sendable {
    private let password: [UInt8]
    private let clientFirstBare: String
    private let nonce: String
    private var expectedServerSignature: [UInt8]?

    /// The most iterations a server may ask for: each costs the client a hash, so a hostile server could
    /// otherwise make a login spin (PostgreSQL uses 4096).
    public static let maximumIterations = 1_000_000

    /// `user` is empty for PostgreSQL, which takes the user from the startup message.
    public init(user: String = "", password: [UInt8], nonce: String) {
        self.password = password
        self.nonce = nonce
        // '=' and ',' in the name are escaped as RFC 5802 says.
        let name = user.replacing("=", with: "=3D").replacing(",", with: "=2C")
        clientFirstBare = "n=\(name),r=\(nonce)"
    }

    /// A fresh client nonce: 18 random bytes, base64.
    public static func makeNonce() throws(TurnkeeperError) -> String { Base64.encode(try SecureRandom.bytes(18)) }

    public var clientFirst: [UInt8] { Array(("n,," + clientFirstBare).utf8) }

    /// The client-final message for the server-first message.
    public mutating func clientFinal(serverFirst: [UInt8]) throws(TurnkeeperError) -> [UInt8] {
        let text = String(decoding: serverFirst, as: UTF8.self)
        let attributes = Self.attributes(text)
        guard let combined = attributes["r"], combined.hasPrefix(nonce), combined.count > nonce.count,
            let saltText = attributes["s"], let salt = Base64.decode(saltText), !salt.isEmpty,
            let iterationText = attributes["i"], let iterations = Int(iterationText),
            (1...Self.maximumIterations).contains(iterations)
        else {
            throw TurnkeeperError(
                .storeRefused, "the server's SCRAM-SHA-256 challenge is malformed or does not echo our nonce")
        }
        let salted = try PBKDF2.sha256(password: password, salt: salt, iterations: iterations)
        let clientKey = try HMAC.authenticationCode(.sha256, key: salted, message: Array("Client Key".utf8))
        let storedKey = Digest.sha256(clientKey)
        let withoutProof = "c=biws,r=\(combined)"
        // The server's message exactly as it sent it: both sides must sign the same bytes.
        let authMessage = Array("\(clientFirstBare),".utf8) + serverFirst + Array(",\(withoutProof)".utf8)
        let signature = try HMAC.authenticationCode(.sha256, key: storedKey, message: authMessage)
        let proof = zip(clientKey, signature).map { $0 ^ $1 }
        let serverKey = try HMAC.authenticationCode(.sha256, key: salted, message: Array("Server Key".utf8))
        expectedServerSignature = try HMAC.authenticationCode(.sha256, key: serverKey, message: authMessage)
        return Array("\(withoutProof),p=\(Base64.encode(proof))".utf8)
    }

    /// Checks the server-final message: the server knew the password.
    public func verify(serverFinal: [UInt8]) throws(TurnkeeperError) {
        let attributes = Self.attributes(String(decoding: serverFinal, as: UTF8.self))
        guard let expected = expectedServerSignature, let given = attributes["v"].flatMap({ Base64.decode($0) }),
            ConstantTime.equals(given, expected)
        else {
            throw TurnkeeperError(
                .storeRefused,
                "the server did not prove that it knows the password (SCRAM-SHA-256 server signature missing or "
                    + "wrong): it may not be the PostgreSQL server it claims to be")
        }
    }

    /// "a=1,b=2" → [a: 1, b: 2]; the first of a repeated attribute wins.
    static func attributes(_ text: String) -> [Character: String] {
        var result: [Character: String] = [:]
        for part in text.split(separator: ",") where part.count >= 2 && part.dropFirst().first == "=" {
            let key = part.first!
            if result[key] == nil { result[key] = String(part.dropFirst(2)) }
        }
        return result
    }
}
