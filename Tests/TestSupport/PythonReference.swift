import Foundation

/// Python's `hmac`, `hashlib` and `base64`, run as a separate process: an implementation of the TURN REST
/// formula that shares no code with ours, fed through stdin so no secret lands in argv.
public enum PythonReference {
    public struct Case: Codable, Sendable {
        public var secret: String
        public var user: String
        public var nowMilliseconds: Int64
        public var lifetimeMilliseconds: Int64

        public init(secret: String, user: String, nowMilliseconds: Int64, lifetimeMilliseconds: Int64) {
            self.secret = secret
            self.user = user
            self.nowMilliseconds = nowMilliseconds
            self.lifetimeMilliseconds = lifetimeMilliseconds
        }
    }

    /// Synapse's own lines from synapse/rest/client/voip.py, applied to each case.
    static let script = """
        import base64, hashlib, hmac, json, sys
        out = []
        for case in json.load(sys.stdin):
            expiry = (case["nowMilliseconds"] + case["lifetimeMilliseconds"]) / 1000
            username = "%d:%s" % (expiry, case["user"])
            mac = hmac.new(case["secret"].encode(), msg=username.encode(), digestmod=hashlib.sha1)
            out.append({"username": username, "password": base64.b64encode(mac.digest()).decode("ascii"),
                        "ttl": case["lifetimeMilliseconds"] // 1000})
        json.dump(out, sys.stdout)
        """

    public struct Answer: Codable, Sendable {
        public var username: String
        public var password: String
        public var ttl: Int64
    }

    public static func credentials(_ cases: [Case]) throws -> [Answer] {
        let python = try ProcessRunner.which("python3", package: "python3")
        let input = String(decoding: try JSONEncoder().encode(cases), as: UTF8.self)
        let output = try ProcessRunner.run(python, ["-c", script], stdin: input)
        guard output.status == 0 else { throw TestFailure("python3 failed: \(output)") }
        return try JSONDecoder().decode([Answer].self, from: Data(output.stdout.utf8))
    }
}
