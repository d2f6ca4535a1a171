import Foundation
import TestSupport
import Testing

/// A shared store that answers but refuses turnkeeper: a wrong password, a database that does not exist, a
/// user that may only read. Each is named for what it is, with its own fix; none is "start the database".
@Suite("Refusals of a shared store, each named for what it is", .mayBlock, .tags(.live))
struct StoreAccessTests {
    static func check(_ deployment: TurnkeeperDeployment) throws -> ProcessOutput {
        let output = try deployment.run(["check"])
        #expect(output.status == 1, "\(output)")
        #expect(!output.stdout.contains("Start the database"), "\(output)")
        return output
    }

    @Test("PostgreSQL: a wrong password, a missing database, a read-only user")
    func postgres() throws {
        let database = try PostgresServer()
        var options = TurnkeeperDeployment.Options()
        options.store = .postgres(database)
        var deployment = try TurnkeeperDeployment(options)
        defer { deployment.stop() }
        let wrong = try deployment.directory.write("wrong-password", "not-the-password\n")

        try deployment.writeConfig { $0.coturn.postgres?.passwordFile = wrong }
        let login = try Self.check(deployment)
        #expect(login.stdout.contains("refused the login of user coturn"), "\(login)")
        #expect(login.stdout.contains("starting it will not help"), "\(login)")

        try deployment.writeConfig { $0.coturn.postgres?.database = "nosuchdb" }
        #expect(try Self.check(deployment).stdout.contains("has no database nosuchdb"))

        // A user that may only read, as coturn's own should be.
        try database.sql(
            "CREATE ROLE reader LOGIN PASSWORD '\(database.password)'; GRANT SELECT ON turn_secret TO reader;")
        deployment.settings.coturn.postgres?.user = "reader"
        try deployment.writeConfig()
        let readOnly = try Self.check(deployment)
        #expect(readOnly.stdout.contains("lets reader read turn_secret but not insert"), "\(readOnly)")
        #expect(!readOnly.stdout.contains(database.password))
    }

    @Test("Redis: a wrong password, and an ACL user that may only read")
    func redis() throws {
        let redis = try RedisServer()
        var options = TurnkeeperDeployment.Options()
        options.store = .redis(redis)
        var deployment = try TurnkeeperDeployment(options)
        defer { deployment.stop() }
        let wrong = try deployment.directory.write("wrong-password", "not-the-password\n")
        try deployment.writeConfig { $0.coturn.redis?.passwordFile = wrong }
        let auth = try Self.check(deployment)
        #expect(auth.stdout.contains("refused AUTH"), "\(auth)")
        #expect(auth.stdout.contains("starting it will not help"), "\(auth)")

        try redis.command(["ACL", "SETUSER", "reader", "on", ">readerpw", "~turn/*", "+smembers", "+ping"])
        let readerPassword = try deployment.directory.write("reader-password", "readerpw\n")
        deployment.settings.coturn.redis?.username = "reader"
        deployment.settings.coturn.redis?.passwordFile = readerPassword
        try deployment.writeConfig()
        let readOnly = try Self.check(deployment)
        #expect(readOnly.stdout.contains("lets turnkeeper read but refused SADD"), "\(readOnly)")
    }
}
