import TurnkeeperCore
public import TurnkeeperCredentials

/// coturn's Redis user database (`redis-userdb`), shared by a fleet of coturn hosts: the set
/// `turn/realm/<realm>/secret` holds the REST secrets, read by coturn on every login.
public struct CoturnRedisStore: CoturnSecretStore {
    public let endpoint: RedisEndpoint
    public let realm: String

    public init(endpoint: RedisEndpoint, realm: String) {
        self.endpoint = endpoint
        self.realm = realm
    }

    var key: String { "turn/realm/\(realm)/secret" }

    public func secrets() async throws -> [TurnSecret] {
        let key = key
        let name = endpoint.name
        return try await RedisConnection.with(endpoint) { connection in
            let answer = try await connection.run(["SMEMBERS", key])
            if case .error(let message) = answer {
                throw TurnkeeperError(
                    .storeRefused, "\(name) refused SMEMBERS on \(key): \(ServerText.escaped(message)).")
            }
            guard case .array(let members?) = answer else {
                throw TurnkeeperError(
                    .storeUnreachable, "\(name) answered SMEMBERS \(key) with something other than a set")
            }
            return try members.map { member throws(TurnkeeperError) in
                guard case .bulk(let bytes?) = member else {
                    throw TurnkeeperError(.storeUnreachable, "\(name) holds a non-string member in \(key)")
                }
                return try TurnSecret(adopting: String(decoding: bytes, as: UTF8.self), source: "\(name) \(key)")
            }
        }
    }

    public func add(_ secret: TurnSecret) async throws {
        try await change("SADD", secret)
    }

    public func remove(_ secret: TurnSecret) async throws {
        try await change("SREM", secret)
    }

    /// SADD and SREM, the commands turnkeeper writes with, on a key of the realm that coturn never reads.
    public func proveWritable() async throws {
        let key = "turn/realm/\(realm)/turnkeeper-write-check"
        let name = endpoint.name
        try await RedisConnection.with(endpoint) { connection in
            for command in ["SADD", "SREM"] {
                if case .error(let message) = try await connection.run([command, key, "check"]) {
                    throw TurnkeeperError(
                        .storeRefused,
                        "\(name) lets turnkeeper read but refused \(command) (\(ServerText.escaped(message))), so no "
                            + "rotation could change coturn's secrets. Give turnkeeper's Redis user +sadd +srem on "
                            + "~turn/realm/* (or use another user for it).")
                }
            }
        }
    }

    private func change(_ command: String, _ secret: TurnSecret) async throws {
        let key = key
        let name = endpoint.name
        let value = secret.withExposedBytes { String(decoding: $0, as: UTF8.self) }
        try await RedisConnection.with(endpoint) { connection in
            if case .error(let message) = try await connection.run([command, key, value]) {
                throw TurnkeeperError(
                    .storeRefused,
                    "\(name) refused \(command) on \(key): \(ServerText.escaped(message)). turnkeeper's Redis user "
                        + "must be allowed to write that key (ACL: +sadd +srem +smembers on ~turn/realm/*).")
            }
        }
    }
}
