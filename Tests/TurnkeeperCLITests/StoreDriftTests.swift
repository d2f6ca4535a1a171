import Foundation
import Glibc
import TestSupport
import Testing
import TurnkeeperCredentials

/// A fleet's shared store changing behind turnkeeper's back while `turnkeeper run` runs: a Redis restarted
/// without persistence, a PostgreSQL restored from an older dump. Two real coturns read the store; the daemon
/// must put it right within one probe interval, log it and count it.
@Suite("A shared store that loses data or is rolled back", .mayBlock, .tags(.live))
struct StoreDriftTests {
    struct Lab {
        let base: TurnkeeperDeployment
        let second: CoturnServer

        func stop() {
            second.stop()
            base.stop()
        }

        func accepts(_ secret: TurnSecret, everywhere: Bool) async throws -> Bool {
            var all = true
            var any = false
            for coturn in [base.coturn, second] {
                let credential = try CredentialMinter(secret: secret)
                    .credential(user: "@alice:test.local", expiry: Int64(Date().timeIntervalSince1970) + 600)
                let granted = try await TURNAllocation.succeeds(
                    port: coturn.port, username: credential.username, password: credential.password)
                all = all && granted
                any = any || granted
            }
            return everywhere ? all : any
        }

        /// Tries until every coturn grants an allocation with `secret`, or 30 s pass: a coturn whose Redis
        /// connection broke fails the request that finds it broken, and reconnects for the next.
        func eventuallyAccepted(_ secret: TurnSecret) async throws -> Bool {
            let clock = ContinuousClock()
            let deadline = clock.now + .seconds(30)
            while clock.now < deadline {
                if try await accepts(secret, everywhere: true) { return true }
                try await Task.sleep(for: .milliseconds(200))
            }
            return false
        }

        func repairs(_ kind: String, daemon: DaemonProcess) throws -> Double? {
            let metrics = try daemon.get("/metrics")
            return try PrometheusText.parse(metrics.body).value("turnkeeper_store_repairs_total", ["kind": kind])
        }
    }

    static func lab(_ store: TurnkeeperDeployment.Options.Store) throws -> Lab {
        var options = TurnkeeperDeployment.Options()
        options.store = store
        options.daemon = true
        options.probeInterval = "2s"
        let base = try TurnkeeperDeployment(options)
        var secondOptions = CoturnServer.Options()
        secondOptions.userDatabaseLines = base.coturn.userDatabaseLines
        return Lab(base: base, second: try CoturnServer(secrets: [], options: secondOptions))
    }

    @Test("Redis down, then back without its data: the probe blames the database; both secrets back at once")
    func redisRestarted() async throws {
        let redis = try RedisServer()
        let lab = try Self.lab(.redis(redis))
        defer { lab.stop() }
        let rotated = try lab.base.run(["rotate"])
        #expect(rotated.status == 0, "\(rotated)")
        let current = try lab.base.currentSecret()
        let daemon = try DaemonProcess(config: lab.base.config, in: lab.base.directory)
        defer { daemon.stop() }
        try await daemon.waitForLog("ready", timeout: .seconds(60))

        // While Redis is down, the probe blames the database, not the secret.
        redis.stop()
        try await daemon.waitForLog("its user database does not answer turnkeeper either", timeout: .seconds(60))
        #expect(!daemon.log.contains("differs from coturn's static-auth-secret"), "\(daemon.log.suffix(3000))")
        // The reconciliation has seen the outage too, so the store's return is an event it can log.
        try await daemon.waitForLog("cannot check coturn's store against turnkeeper's state", timeout: .seconds(60))
        // Back empty; the daemon may repair it before any allocation here, so the loss is proven by its log.
        try redis.restart()
        try await daemon.waitForLog("coturn's store lacked", timeout: .seconds(60))
        #expect(daemon.log.contains("coturn's store answers again"))
        #expect(try await lab.eventuallyAccepted(current))
        #expect(try await lab.eventuallyAccepted(lab.base.original), "the old secret is inside its overlap")
        #expect(try lab.repairs("restored", daemon: daemon) == 2)
        #expect(try lab.repairs("removed", daemon: daemon) == 0)
        #expect(!daemon.log.contains(redis.password))
    }

    @Test("PostgreSQL restored from a dump taken before the rotation: the new secret back, the retired one gone")
    func postgresRestored() async throws {
        let postgres = try PostgresServer()
        let lab = try Self.lab(.postgres(postgres))
        defer { lab.stop() }
        let adopted = try lab.base.run(["rotate", "--resume"])
        #expect(adopted.status == 0, "\(adopted)")
        let backup = try postgres.dump()
        let rotated = try lab.base.run(["rotate"])
        #expect(rotated.status == 0, "\(rotated)")
        let current = try lab.base.currentSecret()
        // The old secret retires after Synapse's hour: run an hour and more ahead.
        let retired = try lab.base.run(
            ["rotate", "--resume"], environment: try FakeTime.environment(offsetSeconds: 3600 + 700))
        #expect(
            retired.status == 0 && retired.stdout.contains("retired \(lab.base.original.fingerprint)"), "\(retired)")
        #expect(try await !lab.accepts(lab.base.original, everywhere: false))

        let daemon = try DaemonProcess(config: lab.base.config, in: lab.base.directory)
        defer { daemon.stop() }
        try await daemon.waitForLog("ready", timeout: .seconds(60))
        let check = try lab.base.run(["check"])
        #expect(check.status == 0, "\(check)")
        try postgres.restore(backup)
        try await daemon.waitForLog("which turnkeeper had retired", timeout: .seconds(60))
        #expect(try await lab.accepts(current, everywhere: true))
        #expect(try await !lab.accepts(lab.base.original, everywhere: false))
        #expect(try lab.repairs("restored", daemon: daemon) == 1)
        #expect(try lab.repairs("removed", daemon: daemon) == 1)
    }
}
