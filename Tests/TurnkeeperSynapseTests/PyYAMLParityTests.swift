import Foundation
import TestSupport
import Testing
import TurnkeeperSynapse

/// turnkeeper must never believe a different TURN secret than Synapse does. Each document is read by the Synapse
/// venv's own PyYAML (`yaml.safe_load`, as Synapse loads its config) and by SynapseConfig: both must agree, or
/// turnkeeper must refuse the file (failing closed, with file and line) where PyYAML reads something Synapse would
/// then choke on.
@Suite("Synapse's secret, read as PyYAML reads it", .mayBlock)
struct PyYAMLParityTests {
    /// (document, turnkeeper may refuse where PyYAML accepts)
    static let documents: [(String, Bool)] = [
        ("turn_shared_secret: plain\n", false),
        ("turn_shared_secret: \"double\"\n", false),
        ("turn_shared_secret: 'single'\n", false),
        ("turn_shared_secret: first\nturn_shared_secret: last\n", false),
        ("turn_shared_secret: ~\n", false),
        ("turn_shared_secret: 'null'\n", false),
        ("turn_shared_secret: ! null\n", false),
        ("turn_shared_secret: !!str 12345\n", false),
        // "block\n": a line break coturn cannot hold, refused.
        ("turn_shared_secret: |\n  block\n", true),
        ("turn_shared_secret: |-\n  block\n", false),
        ("turn_shared_secret: >-\n  folded\n  lines\n", false),
        ("base: &b {turn_shared_secret: merged}\n<<: *b\n", false),
        ("base: &b {turn_shared_secret: merged}\n<<: *b\nturn_shared_secret: explicit\n", false),
        ("turn_shared_secret: explicit\n<<: {turn_shared_secret: merged}\n", false),
        ("a: &a {turn_shared_secret: A}\nb: &b {other: B}\n<<: [*a, *b]\n", false),
        // PyYAML keeps A or B depending on string interning: refused.
        ("a: &a {turn_shared_secret: A}\nb: &b {turn_shared_secret: B}\n<<: [*a, *b]\n", true),
        ("\"<<\": {turn_shared_secret: quoted}\n", false),
        ("k: &k turn_shared_secret\n*k : aliased-key\n", false),
        ("turn_shared_secret: &s anchored\nother: *s\n", false),
        ("? turn_shared_secret\n: complex-key-syntax\n", false),
        ("turn_shared_secret: \"esc\\x41ped\"\n", false),
        ("turn_shared_secret: 'it''s'\n", false),
        ("{turn_shared_secret: flow}\n", false),
        ("# comment\nturn_shared_secret: after-comment # trailing\n", false),
        ("turn_shared_secret: 12345\n", true),
        ("turn_shared_secret: yes\n", true),
        ("turn_shared_secret: 0x1F\n", true),
        ("turn_shared_secret: 2001-12-14\n", true),
        ("turn_shared_secret: 1.5\n", true),
        ("# x\n\u{FEFF}turn_shared_secret: bom-mid-file\n", true),
        ("\u{FEFF}turn_shared_secret: bom-at-start\n", false),
        ("turn_shared_secret: [a, b]\n", true),
        ("turn_shared_secret: \"line\\nbreak\"\n", true),
        ("[a]: 1\n", false),
        ("a: 1\n---\nb: 2\n", false),
        ("turn_shared_secret: \"unterminated\n", false),
        // Tabs: PyYAML takes them only in quotes, block scalars and comments.
        ("turn_shared_secret:\tafter-tab\n", false),
        ("turn_shared_secret: before-tab\t# comment\n", false),
        ("turn_shared_secret: comment # with\ttab\n", false),
        ("turn_shared_secret: 'quoted-tab-free'\nother: \"a\tb\"\n", false),
        ("turn_shared_secret: |-\n  block\twith tab\n", true),
        ("\tturn_shared_secret: indented-by-tab\n", false),
    ]

    @Test("Every document: the same secret as PyYAML, or a refusal", arguments: Array(documents.indices))
    func parity(index: Int) throws {
        let (document, mayRefuse) = Self.documents[index]
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let file = try directory.write("homeserver.yaml", document)
        let python = try ProcessRunner.run(
            try SynapseServer.python(),
            [
                "-c",
                """
                import sys, yaml
                try:
                    c = yaml.safe_load(open(sys.argv[1], encoding='utf-8'))
                except Exception:
                    print('REFUSED'); sys.exit(0)
                v = c.get('turn_shared_secret') if isinstance(c, dict) else None
                print('NONE' if v is None else ('VALUE:' + v if isinstance(v, str) else 'NOT-A-STRING'))
                """,
                file,
            ])
        let pyyaml = python.stdout.trimmingCharacters(in: .newlines)
        let ours: String
        do {
            let secret = try SynapseConfig.load([file]).turnSecret
            ours = secret.map { "VALUE:" + $0.withExposedBytes { String(decoding: $0, as: UTF8.self) } } ?? "NONE"
        } catch {
            ours = "REFUSED"
        }
        if ours == "REFUSED" && pyyaml != "REFUSED" {
            #expect(mayRefuse, "turnkeeper refuses what PyYAML reads as \(pyyaml): \(document.debugDescription)")
        } else {
            #expect(ours == pyyaml, "\(document.debugDescription): PyYAML \(pyyaml), turnkeeper \(ours)")
        }
        // Never both reading a secret and disagreeing on it.
        #expect(!(ours.hasPrefix("VALUE:") && pyyaml.hasPrefix("VALUE:") && ours != pyyaml))
    }
}
