import Foundation
import TestSupport
import Testing
import TurnkeeperConfiguration
import TurnkeeperCredentials
import TurnkeeperCrypto
import TurnkeeperSetup

/// A host laid out as Debian's packages lay it out, in a temporary directory.
private struct Host {
    let directory: TemporaryDirectory
    var paths: HostSurvey.Paths
    static let secret = "AdminSecret0123456789abcdefghijklmnopqrstuvwxyzAB"

    init(
        turnserver: String?, homeserver: String = "turn_shared_secret: \"\(Host.secret)\"\nturn_user_lifetime: 1h\n",
        confD: [String: String] = [:], prosody: String? = nil, units: [String] = ["matrix-synapse.service"]
    ) throws {
        directory = try TemporaryDirectory("turnkeeper-setup")
        try FileManager.default.createDirectory(atPath: directory.file("conf.d"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: directory.file("units"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: directory.file("prosody"), withIntermediateDirectories: true)
        _ = try directory.write("homeserver.yaml", "server_name: example.org\n" + homeserver)
        for (name, text) in confD { _ = try directory.write("conf.d/\(name)", text) }
        if let turnserver { _ = try directory.write("turnserver.conf", turnserver) }
        if let prosody { _ = try directory.write("prosody/prosody.cfg.lua", prosody) }
        for unit in units { _ = try directory.write("units/\(unit)", "[Service]\n") }
        paths = HostSurvey.Paths(
            synapseConfig: [directory.file("homeserver.yaml"), directory.file("conf.d")],
            turnserverConf: directory.file("turnserver.conf"), prosodyConfig: directory.file("prosody/prosody.cfg.lua"),
            unitDirectories: [directory.file("units")])
    }

    func plan(_ choices: SetupPlan.Choices = .init(synapseGroup: "root")) -> SetupPlan {
        SetupPlan(HostSurvey.read(paths), choices: choices, path: directory.file("turnkeeper.yaml"))
    }

    static let sqliteTurnserver = """
        listening-port=3479
        realm=turn.example.org
        use-auth-secret
        userdb=/var/lib/turn/turndb
        syslog

        """
}

@Suite("turnkeeper init: what it reads, chooses and refuses to guess")
struct SetupPlanTests {
    @Test("Debian's layout with a SQLite user database: store sqlite, loopback verify URI; the file reads back equal")
    func debianSQLite() throws {
        let host = try Host(turnserver: Host.sqliteTurnserver)
        defer { host.directory.remove() }
        let plan = host.plan()
        #expect(plan.undecided == [])
        let configuration = try #require(plan.configuration)
        #expect(configuration.coturn.store == .sqlite(database: "/var/lib/turn/turndb"))
        #expect(configuration.coturn.realm == "turn.example.org")
        #expect(configuration.coturn.verifyURI == "turn:127.0.0.1:3479?transport=udp")
        #expect(configuration.synapse.managedFile == host.directory.file("conf.d") + "/90-turnkeeper.yaml")
        #expect(configuration.rotation.interval == .days(7))
        #expect(plan.chose.contains { $0.hasPrefix("coturn.store sqlite") && $0.contains("drops no call") })

        let text = try #require(plan.rendered())
        #expect(!text.contains(Host.secret), "the configuration never holds Synapse's secret")
        #expect(text.contains("# chose: coturn.store sqlite"))
        _ = try host.directory.write("turnkeeper.yaml", text)
        let loaded = try Configuration.load(host.directory.file("turnkeeper.yaml"))
        #expect(loaded == configuration)
    }

    @Test("static-auth-secret in turnserver.conf: store config, and it says each rotation restarts coturn")
    func staticSecret() throws {
        let host = try Host(
            turnserver: "realm=turn.example.org\nuse-auth-secret\nstatic-auth-secret=\(Host.secret)\n")
        defer { host.directory.remove() }
        let plan = host.plan()
        let configuration = try #require(plan.configuration, "\(plan.undecided)")
        #expect(configuration.coturn.store.isConfigFile)
        #expect(configuration.coturn.configFile == host.paths.turnserverConf)
        #expect(plan.chose.contains { $0.contains("line 3") && $0.contains("drops every call") })
        #expect(plan.notes.contains { $0.contains("ReadWritePaths=\(host.directory.path)") })
        #expect(!(plan.found + plan.chose + plan.notes).joined().contains(Host.secret))
    }

    @Test("Prosody signing with Synapse's secret: undecided, nothing written; another secret: left alone")
    func prosody() throws {
        let same = try Host(
            turnserver: Host.sqliteTurnserver,
            prosody: "modules_enabled = { \"turn_external\" }\nturn_external_secret = \"\(Host.secret)\"\n")
        defer { same.directory.remove() }
        let blocked = same.plan()
        #expect(blocked.configuration == nil)
        #expect(blocked.rendered() == nil)
        #expect(blocked.undecided.contains { $0.contains("prosody.cfg.lua:2") && $0.contains("consumers:") })
        #expect(!blocked.undecided.joined().contains(Host.secret))

        let other = try Host(
            turnserver: Host.sqliteTurnserver, prosody: "turn_external_secret = \"SomethingElseEntirely0123456789\"\n")
        defer { other.directory.remove() }
        let plan = other.plan()
        #expect(plan.configuration != nil)
        #expect(plan.found.contains { $0.contains("is not Synapse's secret") })

        // Jitsi Meet's Prosody (mod_external_services), a trailing comment: still Synapse's secret.
        let jitsi = try Host(
            turnserver: Host.sqliteTurnserver,
            prosody: "external_service_secret = \"\(Host.secret)\"; -- shared with coturn\n")
        defer { jitsi.directory.remove() }
        #expect(jitsi.plan().undecided.contains { $0.contains("external_service_secret") && $0.contains("consumers:") })

        // A concatenation is not the whole value: init cannot tell, so it asks.
        let joined = try Host(
            turnserver: Host.sqliteTurnserver,
            prosody: "turn_external_secret = \"\(Host.secret)\" .. \"more\"\n")
        defer { joined.directory.remove() }
        #expect(joined.plan().undecided.contains { $0.contains("cannot compare") })
    }

    @Test("What the host cannot tell stays undecided until an option settles it")
    func undecided() throws {
        let host = try Host(turnserver: "use-auth-secret\n", units: [])
        defer { host.directory.remove() }
        let plan = host.plan()
        #expect(plan.configuration == nil)
        #expect(plan.undecided.contains { $0.contains("realm") && $0.contains("--realm") })
        #expect(plan.undecided.contains { $0.contains("--synapse-unit") })

        let noConf = try Host(turnserver: nil)
        defer { noConf.directory.remove() }
        #expect(noConf.plan().undecided.contains { $0.contains("separate-turn-host.md") })

        let noREST = try Host(turnserver: "realm=r.example\nlt-cred-mech\n")
        defer { noREST.directory.remove() }
        #expect(noREST.plan().undecided.contains { $0.contains("use-auth-secret") })

        let shared = try Host(turnserver: "realm=r.example\nuse-auth-secret\nredis-userdb=\"ip=10.0.0.2\"\n")
        defer { shared.directory.remove() }
        #expect(shared.plan().undecided.contains { $0.contains("redis-userdb") })

        let settled = try Host(turnserver: "use-auth-secret\n")
        defer { settled.directory.remove() }
        let plan2 = settled.plan(.init(realm: "turn.example.net", synapseGroup: "root", synapseUnit: "synapse.service"))
        #expect(plan2.configuration?.coturn.realm == "turn.example.net")
        #expect(plan2.configuration?.synapse.restartCommand == ["systemctl", "restart", "synapse.service"])
    }

    @Test("The article's conf.d/<domain>.yaml sets the secret: turnkeeper's file sorts after it, and says so")
    func domainFileInConfD() throws {
        let host = try Host(
            turnserver: Host.sqliteTurnserver,
            confD: ["example.com.yaml": "server_name: example.com\nturn_shared_secret: \"\(Host.secret)\"\n"])
        defer { host.directory.remove() }
        let plan = host.plan()
        let configuration = try #require(plan.configuration, "\(plan.undecided)")
        #expect(configuration.synapse.managedFile == host.directory.file("conf.d") + "/zz-turnkeeper.yaml")
        #expect(plan.chose.contains { $0.contains("overrides") && $0.contains("example.com.yaml, line 2") })
    }

    @Test("A conf.d file that sorts after every name turnkeeper's could take, and sets the secret: undecided")
    func overridingConfD() throws {
        let host = try Host(
            turnserver: Host.sqliteTurnserver, confD: ["zzz-turn.yaml": "turn_shared_secret: \"\(Host.secret)\"\n"])
        defer { host.directory.remove() }
        let plan = host.plan()
        #expect(plan.configuration == nil)
        #expect(plan.undecided.contains { $0.contains("zzz-turn.yaml") && $0.contains("sorts after") })
    }

    @Test("--synapse-group nogroup: refused, since every process in that group could read the secret")
    func sharedGroup() throws {
        let host = try Host(turnserver: Host.sqliteTurnserver)
        defer { host.directory.remove() }
        let plan = host.plan(.init(synapseGroup: "nogroup"))
        #expect(plan.configuration == nil)
        #expect(plan.undecided.contains { $0.contains("--synapse-group nogroup") && $0.contains("shared") })
    }

    @Test("A schedule that would retire a secret while its credentials live is refused")
    func schedule() throws {
        let host = try Host(turnserver: Host.sqliteTurnserver)
        defer { host.directory.remove() }
        let plan = host.plan(.init(synapseGroup: "root", interval: .minutes(30)))
        #expect(plan.configuration == nil)
        #expect(plan.undecided.contains { $0.contains("--interval") })
    }

    @Test("The package's example conffile is known by its digest (add the new one when the example changes)")
    func shippedExample() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let example = try Data(contentsOf: root.appendingPathComponent("docs/turnkeeper.example.yaml"))
        #expect(ShippedExample.sha256.contains(Hex.encode(Digest.sha256(Array(example)))))
    }
}
