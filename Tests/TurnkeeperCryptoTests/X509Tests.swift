import Foundation
import TestSupport
import Testing
import TurnkeeperCrypto

/// The one X.509 reader, on certificates Python's `cryptography` made (an independent encoder).
@Suite("X.509 certificates and PEM keys, read with libcrypto", .mayBlock)
struct X509Tests {
    static func bytes(_ path: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path))) }

    @Test("DER and PEM give the same names and validity; DNS and IP names in their order")
    func namesAndValidity() throws {
        let directory = try TemporaryDirectory("x509")
        defer { directory.remove() }
        let certificates = try TestCertificates(in: directory)
        let pem = try X509Certificate.pemChain(Self.bytes(certificates.good.certificate))
        #expect(pem.count == 1)
        let der = try X509Certificate(der: Self.bytes(directory.file("good.der")))
        let loopback6 = [UInt8](repeating: 0, count: 15) + [1]
        for certificate in [pem[0], der] {
            #expect(certificate.subjectAlternativeNames == [.dns("localhost"), .ip([127, 0, 0, 1]), .ip(loopback6)])
            let now = Int64(Date().timeIntervalSince1970)
            let before = try #require(certificate.notValidBefore)
            let after = try #require(certificate.notValidAfter)
            // Made a day before now, valid for 31 days (the clock of this test and of the script may differ by a
            // few seconds, not by an hour).
            #expect(abs(before - (now - 86_400)) < 3600 && abs(after - (now + 30 * 86_400)) < 3600)
        }
    }

    @Test("Host names as WebRTC stacks judge them, server purpose, and the key that belongs")
    func judgements() throws {
        let directory = try TemporaryDirectory("x509")
        defer { directory.remove() }
        let certificates = try TestCertificates(in: directory)
        let turn = try X509Certificate.pemChain(Self.bytes(certificates.turn.certificate))[0]
        #expect(turn.covers(host: "turn.example.com"))
        #expect(!turn.covers(host: "example.com") && !turn.covers(host: "other.example.com"))
        let partial = try X509Certificate.pemChain(Self.bytes(certificates.turnPartialWildcard.certificate))[0]
        #expect(!partial.covers(host: "turn.example.com"), "no partial wildcards")
        #expect(turn.servesTLS)
        #expect(!(try X509Certificate.pemChain(Self.bytes(certificates.turnClientOnly.certificate))[0].servesTLS))
        #expect(turn.isCertified(try PEMPrivateKey(pem: Self.bytes(certificates.turn.key))))
        #expect(!turn.isCertified(try PEMPrivateKey(pem: Self.bytes(certificates.good.key))))
    }

    @Test("What is not a certificate or key says which, never what it holds")
    func refusals() throws {
        let directory = try TemporaryDirectory("x509")
        defer { directory.remove() }
        let certificates = try TestCertificates(in: directory)
        let key = try Self.bytes(certificates.turn.key)
        let pem = try Self.bytes(certificates.turn.certificate)
        #expect(throws: X509Error(.keyNotCertificate)) { try X509Certificate.pemChain(key) }
        #expect(throws: X509Error(.noCertificateBlock)) { try X509Certificate.pemChain(Array("hello".utf8)) }
        #expect(throws: X509Error(.certificateNotKey)) { try PEMPrivateKey(pem: pem) }
        #expect(throws: X509Error(.undecodable)) { try X509Certificate(der: []) }
        // A second block cut short: the first decodes, the second is named.
        let broken = pem + Array("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".utf8)
        #expect(throws: X509Error(.undecodableBlock(2))) { try X509Certificate.pemChain(broken) }
    }

    @Test("Truncated and bit-flipped DER never crashes: it decodes or throws")
    func hostileDER() throws {
        let directory = try TemporaryDirectory("x509")
        defer { directory.remove() }
        _ = try TestCertificates(in: directory)
        let der = try Self.bytes(directory.file("good.der"))
        var generator = SystemRandomNumberGenerator()
        for length in 0..<der.count {
            _ = (try? X509Certificate(der: Array(der.prefix(length))))?.subjectAlternativeNames
        }
        for _ in 0..<2000 {
            var mutated = der
            mutated[Int.random(in: 0..<mutated.count, using: &generator)] ^= UInt8.random(
                in: 1...255, using: &generator)
            if let certificate = try? X509Certificate(der: mutated) {
                _ = certificate.subjectAlternativeNames
                _ = certificate.notValidAfter
                _ = certificate.covers(host: "localhost")
                _ = certificate.servesTLS
            }
        }
    }
}
