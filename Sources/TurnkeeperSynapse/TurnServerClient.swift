import FoundationEssentials
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import TurnkeeperCore
public import TurnkeeperCredentials
import TurnkeeperExecution

/// Fetches `GET /_matrix/client/v3/voip/turnServer` with an access token, exactly as a Matrix client
/// does, so the probe tests the credentials Synapse really hands out.
public enum TurnServerClient {
    /// What Synapse answered: credentials and URIs, or nothing (`{}`: TURN is not configured).
    public enum Answer: Sendable, Hashable {
        case credentials(TurnServerResponse)
        case empty
    }

    public static func fetch(
        homeserver: String,
        accessToken: String,
        caFile: String? = nil,
        timeout: Duration = .seconds(10)
    ) async throws -> Answer {
        let url = try HomeserverURL(homeserver)
        let (status, body) = try await withThrowingTaskGroup(of: (HTTPResponseStatus, [UInt8])?.self) { group in
            group.addTask {
                try await get(
                    url, path: url.path + "/_matrix/client/v3/voip/turnServer", token: accessToken, caFile: caFile)
            }
            group.addTask {
                try await Pause.for(timeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let result = first else {
                throw TurnkeeperError(
                    .synapseUnreachable, "\(homeserver) did not answer /voip/turnServer within \(timeout).")
            }
            return result
        }
        let object: [String: JSONValue]? =
            if case .object(let members)? = JSONValue.parse(body) { members } else { nil }
        guard status == .ok else {
            // Shown only when it looks like a Matrix error code: the server's text is not ours to print.
            let raw = object?["errcode"]?.string ?? ""
            let isCode =
                raw.hasPrefix("M_") && raw.utf8.count <= 64
                && raw.utf8.allSatisfy { ($0 >= 0x41 && $0 <= 0x5A) || $0 == 0x5F || ($0 >= 0x30 && $0 <= 0x39) }
            let code = isCode ? raw : ""
            let advice =
                switch code {
                case "M_UNKNOWN_TOKEN", "M_MISSING_TOKEN":
                    "The access token is not valid: log in again and save the new token."
                case "M_FORBIDDEN": "Synapse refused: guests get no TURN credentials while turn_allow_guests is false."
                default: "Check the homeserver URL (it is the client API's base, e.g. https://matrix.example.org)."
                }
            throw TurnkeeperError(
                .synapseUnreachable, "\(homeserver) answered /voip/turnServer with \(status.code) \(code). \(advice)")
        }
        guard let object else {
            throw TurnkeeperError(
                .synapseUnreachable, "\(homeserver) answered /voip/turnServer with something that is not a JSON object."
            )
        }
        if object.isEmpty { return .empty }
        guard let username = object["username"]?.string, let password = object["password"]?.string,
            case .array(let listed)? = object["uris"]
        else {
            throw TurnkeeperError(
                .synapseUnreachable, "\(homeserver)'s /voip/turnServer answer lacks username, password or uris.")
        }
        let uris = listed.compactMap(\.string)
        // A number from the server: only a sane one becomes an Int64 (a NaN or 1e300 would trap).
        let ttl = object["ttl"]?.number.flatMap { $0.isFinite && $0 >= 0 && $0 < 1e12 ? Int64($0) : nil } ?? 0
        return .credentials(TurnServerResponse(username: username, password: password, ttl: ttl, uris: uris))
    }

    /// `GET url` (no credentials sent): the status and up to 1 MiB of body, or an error within `timeout`. For
    /// an app's own answer of what it hands out (a file consumer's verify_url).
    public static func get(_ url: String, timeout: Duration = .seconds(10)) async throws -> (status: Int, body: [UInt8])
    {
        let parsed = try HomeserverURL(url)
        return try await withThrowingTaskGroup(of: (Int, [UInt8])?.self) { group in
            group.addTask {
                let (status, body) = try await get(
                    parsed, path: parsed.path.isEmpty ? "/" : parsed.path, token: nil, caFile: nil)
                return (Int(status.code), body)
            }
            group.addTask {
                try await Pause.for(timeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let result = first else {
                throw TurnkeeperError(.verificationFailed, "\(parsed.host) did not answer within \(timeout).")
            }
            return result
        }
    }

    /// True when `url` (such as http://127.0.0.1:8008/health) answers 200 within `timeout`.
    public static func isHealthy(_ url: String, timeout: Duration = .seconds(2)) async -> Bool {
        guard let parsed = try? HomeserverURL(url) else { return false }
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                let path = parsed.path.isEmpty ? "/" : parsed.path
                return (try? await get(parsed, path: path, token: nil, caFile: nil).0) == .ok
            }
            group.addTask {
                try? await Pause.for(timeout)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
    }

    private static func get(
        _ url: HomeserverURL,
        path: String,
        token: String?,
        caFile: String?
    ) async throws -> (HTTPResponseStatus, [UInt8]) {
        let sslContext: NIOSSLContext?
        if url.secure {
            var configuration = TLSConfiguration.makeClientConfiguration()
            if let caFile { configuration.trustRoots = .file(caFile) }
            sslContext = try NIOSSLContext(configuration: configuration)
        } else {
            sslContext = nil
        }
        let isIP = (try? SocketAddress(ipAddress: url.host, port: 0)) != nil
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(10))
            .connect(host: url.host, port: url.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let sslContext {
                        try channel.pipeline.syncOperations.addHandler(
                            NIOSSLClientHandler(context: sslContext, serverHostname: isIP ? nil : url.host)
                        )
                    }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(
                        wrappingChannelSynchronously: channel
                    )
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path)
            head.headers.add(name: "Host", value: url.hostHeader)
            if let token { head.headers.add(name: "Authorization", value: "Bearer \(token)") }
            head.headers.add(name: "Accept", value: "application/json")
            head.headers.add(name: "User-Agent", value: "turnkeeper")
            head.headers.add(name: "Connection", value: "close")
            // One write: a server that answers and closes at once (HTTP/1.0) must not fail a second one.
            try await outbound.write(contentsOf: [.head(head), .end(nil)])
            var status = HTTPResponseStatus.badGateway
            var body: [UInt8] = []
            for try await part in inbound {
                switch part {
                case .head(let response):
                    status = response.status
                case .body(let buffer):
                    body += buffer.readableBytesView
                    // A /voip/turnServer answer is a few hundred bytes; a flood is not a homeserver.
                    guard body.count <= 1_048_576 else {
                        throw TurnkeeperError(
                            .synapseUnreachable, "\(url.host) sent more than 1 MiB for /voip/turnServer.")
                    }
                case .end:
                    return (status, body)
                }
            }
            return (status, body)
        }
    }
}

/// `http(s)://host[:port][/prefix]`, the client API's base URL.
struct HomeserverURL {
    let secure: Bool
    let host: String
    let port: Int
    let path: String

    var hostHeader: String {
        let name = host.contains(":") ? "[\(host)]" : host
        return (secure && port == 443) || (!secure && port == 80) ? name : "\(name):\(port)"
    }

    init(_ text: String) throws(TurnkeeperError) {
        let bad = TurnkeeperError(
            .invalidArgument,
            "\"\(text)\" is not a homeserver URL. Give the client API's base, such as https://matrix.example.org."
        )
        let secure: Bool
        var rest: Substring
        if text.hasPrefix("https://") {
            secure = true
            rest = text.dropFirst(8)
        } else if text.hasPrefix("http://") {
            secure = false
            rest = text.dropFirst(7)
        } else {
            throw bad
        }
        var path = ""
        if let slash = rest.firstIndex(of: "/") {
            path = String(rest[slash...])
            rest = rest[..<slash]
        }
        while path.hasSuffix("/") { path.removeLast() }
        var host = rest
        var port = secure ? 443 : 80
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw bad }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if after.hasPrefix(":") {
                guard let value = Int(after.dropFirst()) else { throw bad }
                port = value
            }
        } else if let colon = rest.lastIndex(of: ":") {
            guard let value = Int(rest[rest.index(after: colon)...]) else { throw bad }
            host = rest[..<colon]
            port = value
        }
        guard !host.isEmpty, (1...65535).contains(port) else { throw bad }
        self.secure = secure
        self.host = String(host)
        self.port = port
        self.path = path
    }
}
