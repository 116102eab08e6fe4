import SandpiperModel
import XCTest
import SandpiperRedaction

/// Hostile documents are refused quickly with a clear message, never a hang or memory blow-up.
final class HostileInputTests: XCTestCase {
    private func rejection(_ text: String) -> [SpecDiagnostic] {
        do {
            _ = try SpecDecoder.decodeCluster(text, file: "evil.yaml")
            return []
        } catch let e as SpecErrors {
            return e.diagnostics
        } catch {
            return [SpecDiagnostic(file: "?", line: 0, column: 0, field: "", message: "\(error)")]
        }
    }

    func testBillionLaughsIsRefusedByTheAliasBudget() {
        var doc = "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
        let names = ["b", "c", "d", "e", "f", "g", "h", "i"]
        var previous = "a"
        for name in names {
            doc += "\(name): &\(name) [" + Array(repeating: "*\(previous)", count: 9).joined(separator: ",") + "]\n"
            previous = name
        }
        let start = ContinuousClock.now
        let errors = rejection(doc)
        XCTAssertLessThan(ContinuousClock.now - start, .seconds(2), "alias bomb must be refused fast")
        XCTAssertEqual(errors.count, 1)
        XCTAssertTrue(errors[0].message.contains("alias bomb"), errors[0].message)
        XCTAssertEqual(errors[0].file, "evil.yaml")
        XCTAssertGreaterThan(errors[0].line, 1)
    }

    func testFiftyMegabyteDocumentIsRefusedWithoutParsing() {
        let big = "name: " + String(repeating: "x", count: 50 << 20)
        let errors = rejection(big)
        XCTAssertEqual(errors.count, 1)
        XCTAssertTrue(errors[0].message.contains("the limit is"), errors[0].message)
    }

    func testDeepNestingIsRefused() {
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        let errors = rejection("hosts: " + deep)
        XCTAssertEqual(errors.count, 1)
        XCTAssertTrue(errors[0].message.contains("deeper than"), errors[0].message)
    }

    private func diagnostics(vm: String, policy: Bool = false) -> [String] {
        let yaml = """
            apiVersion: sandpiper/v1
            kind: Cluster
            name: t
            hosts: [{name: pm1, uri: "qemu:///system", labels: {rack: a}}]
            vms: [{\(vm)}]
            """
        return SpecDecoder.check(yaml, file: "c.yaml") { _ in true }.diagnostics.map(\.description)
    }

    func testYAMLTagsAreRefusedWhereverTheyAppear() {
        XCTAssertEqual(diagnostics(vm: "name: a, vcpus: !!str 2, memory: 1GiB"),
                       ["c.yaml:5:24: vms[0].vcpus: YAML tags are not supported (found !!str); remove the tag"])
        XCTAssertEqual(diagnostics(vm: "name: a, vcpus: !foo 2, memory: 1GiB"),
                       ["c.yaml:5:24: vms[0].vcpus: YAML tags are not supported (found !foo); remove the tag"])
        XCTAssertEqual(diagnostics(vm: "name: !!str a, vcpus: 2, memory: 1GiB"),
                       ["c.yaml:5:14: vms[0].name: YAML tags are not supported (found !!str); remove the tag"])
        XCTAssertEqual(diagnostics(vm: "name: a, vcpus: 2, memory: 1GiB, placement: !!map {host: pm1}"),
                       ["c.yaml:5:52: vms[0].placement: YAML tags are not supported (found !!map); remove the tag"])
        XCTAssertEqual(diagnostics(vm: "name: a, vcpus: 2, !!str memory: 1GiB").count, 1)
        // A tagged document root and a tagged list item.
        let root = SpecDecoder.check("--- !cluster\napiVersion: sandpiper/v1\nkind: Cluster\nname: t\nhosts: []\nvms: []\n",
                                     file: "r.yaml") { _ in true }.diagnostics.map(\.description)
        XCTAssertTrue(root.contains { $0.contains("YAML tags are not supported (found !cluster)") }, "\(root)")
        let item = SpecDecoder.check("apiVersion: sandpiper/v1\nkind: Cluster\nname: t\nhosts: [!h {name: pm1, uri: \"qemu:///system\"}]\nvms: []\n",
                                     file: "i.yaml") { _ in true }.diagnostics.map(\.description)
        XCTAssertTrue(item.contains { $0.hasPrefix("i.yaml:4:9: hosts[0]: YAML tags are not supported (found !h)") }, "\(item)")
    }

    func testAPlusSignIsRefusedForWholeNumbersAsForOtherNumbers() {
        XCTAssertEqual(diagnostics(vm: "name: a, vcpus: +2, memory: 1GiB"),
                       ["c.yaml:5:24: vms[0].vcpus: \"+2\" is not a whole number"])
        XCTAssertEqual(diagnostics(vm: "name: a, vcpus: 2, memory: 1GiB"), [])
        XCTAssertEqual(diagnostics(vm: "name: a, vcpus: 0x2, memory: 1GiB"),
                       ["c.yaml:5:24: vms[0].vcpus: \"0x2\" is not a whole number"])
    }

    func testEmptyFileIsAnError() {
        XCTAssertEqual(rejection("# nothing here\n").map(\.description), ["evil.yaml:1:1: the file is empty"])
    }
}

final class UnitsTests: XCTestCase {
    func testSizesRoundTrip() {
        for (text, mib) in [("512MiB", 512.0), ("2GiB", 2048), ("1.5GiB", 1536), ("1TiB", 1_048_576), ("2G", 2048),
                            ("300M", 300)] {
            XCTAssertEqual(Units.parseSizeMiB(text), mib, text)
        }
        for mib in [1.0, 100, 512, 1024, 1536, 2048, 3072, 16384, 1_048_576, 1_572_864] {
            let text = Units.formatMiB(mib)
            XCTAssertEqual(Units.parseSizeMiB(text), mib, "\(mib) -> \(text)")
        }
        XCTAssertEqual(Units.formatMiB(2048), "2GiB")
        XCTAssertEqual(Units.formatMiB(1536), "1.5GiB")
        XCTAssertEqual(Units.formatMiB(100), "100MiB")
    }

    func testMalformedSizesAreRejected() {
        for bad in ["3 GB", "32", "GiB", "-1GiB", "1e3MiB", "1..5GiB", "2gib", ".5GiB", "5GB"] {
            XCTAssertNil(Units.parseSizeMiB(bad), bad)
        }
    }

    func testBandwidthAndDurationsRoundTrip() {
        XCTAssertEqual(Units.parseBandwidthMbps("1Gbit"), 1000)
        XCTAssertEqual(Units.parseBandwidthMbps("100Mbit"), 100)
        XCTAssertNil(Units.parseBandwidthMbps("1Gbps"))
        for mbps in [10.0, 100, 1000, 2500, 10000] {
            XCTAssertEqual(Units.parseBandwidthMbps(Units.formatMbps(mbps)), mbps)
        }
        XCTAssertEqual(Units.parseDurationSeconds("10s"), 10)
        XCTAssertEqual(Units.parseDurationSeconds("5m"), 300)
        XCTAssertEqual(Units.parseDurationSeconds("1h"), 3600)
        XCTAssertEqual(Units.parseDurationSeconds("500ms"), 0.5)
        for s in [0.5, 1, 10, 90, 300, 7200] {
            XCTAssertEqual(Units.parseDurationSeconds(Units.formatSeconds(s)), s)
        }
        XCTAssertNil(Units.parseDurationSeconds("10"))
        XCTAssertNil(Units.parseDurationSeconds("ten s"))
    }
}

final class HostURITests: XCTestCase {
    func testCredentialsAreRedacted() {
        XCTAssertEqual(HostURI.redacted("qemu+ssh://root:hunter2@pm1/system"), "qemu+ssh://root:***@pm1/system")
        XCTAssertEqual(HostURI.redacted("qemu+ssh://pm1/system?keyfile=/root/id&no_verify=1"),
                       "qemu+ssh://pm1/system?keyfile=***&no_verify=1")
        XCTAssertEqual(HostURI.redacted("qemu:///system"), "qemu:///system")
        XCTAssertEqual(HostURI.redacted("qemu+tls://a:b@h:16514/system?pkipath=/x&password=p"),
                       "qemu+tls://a:***@h:16514/system?pkipath=***&password=***")
    }

    /// The issue's cases: secrets that the old hand parser printed (a '#', '/' or '?' in the password, a
    /// `passphrase=` parameter, a percent-encoded parameter name) and their percent-decoded spellings.
    func testSecretsInEveryShapeAreRedactedAndListed() {
        let cases: [(uri: String, redacted: String, secrets: [String])] = [
            ("qemu+ssh://root:S3c#ret@pm6/system", "qemu+ssh://root:***@pm6/system", ["S3c#ret"]),
            ("qemu+ssh://root:pa/ss@pm6/system", "qemu+ssh://root:***@pm6/system", ["pa/ss"]),
            ("qemu+ssh://root:p?ss@pm6/system?keyfile=/k", "qemu+ssh://root:***@pm6/system?keyfile=***", ["p?ss", "/k"]),
            ("qemu+ssh://h/system?passphrase=Pp1&no_verify=1", "qemu+ssh://h/system?passphrase=***&no_verify=1", ["Pp1"]),
            ("qemu+ssh://h/system?key%66ile=/k/KEY", "qemu+ssh://h/system?key%66ile=***", ["/k/KEY"]),
            ("qemu+ssh://h/system?keyfile=%2Fk%2FKEY", "qemu+ssh://h/system?keyfile=***", ["%2Fk%2FKEY", "/k/KEY"]),
            ("qemu+ssh://u:S3c%23ret@h/system", "qemu+ssh://u:***@h/system", ["S3c%23ret", "S3c#ret"]),
            ("qemu+ssh://h/system?authfile=/a;no_verify=1", "qemu+ssh://h/system?authfile=***;no_verify=1", ["/a"]),
            ("qemu+ssh://h/system?private_key=PK&x=1", "qemu+ssh://h/system?private_key=***&x=1", ["PK"]),
            ("qemu+ssh://h/system?password=ab#cd", "qemu+ssh://h/system?password=***#***", ["ab", "cd"]),
            ("qemu+ssh://h/sys tem?password=a b&x=1", "qemu+ssh://h/sys tem?password=***&x=1", ["a b"]),
        ]
        for c in cases {
            XCTAssertEqual(HostURI.redacted(c.uri), c.redacted, c.uri)
            let listed = URIRedaction.secrets(in: c.uri)
            for s in c.secrets { XCTAssertTrue(listed.contains(s), "\(c.uri): \(s) not in \(listed)") }
            let message = "Unable to parse URI \(c.uri); tried " + c.secrets.joined(separator: ", ")
            let scrubbed = URIRedaction.scrub(message, uri: c.uri)
            for s in c.secrets { XCTAssertFalse(scrubbed.contains(s), "\(c.uri): \(scrubbed)") }
        }
    }

    /// libvirt answers "Unable to parse URI" for these (checked with virsh); validate says so first, with the
    /// URI redacted.
    func testURIsLibvirtCannotParseAreRefusedWithoutTheSecret() {
        for (text, secret) in [("qemu+ssh://root:S3c#ret@pm6/system", "ret"), ("qemu+ssh://root:p?ss@pm6/system", "ss@"),
                               ("qemu+ssh://root:p/ss@pm6/system", "p/ss"), ("qemu+ssh://root:a@b@pm6/system", "a@b"),
                               ("qemu+ssh://root:p%zz@pm6/system", "%zz"),
                               ("qemu+ssh://h/system?password=x#Fr4g", "Fr4g")] {
            guard case .failure(let e) = HostURI.parse(text) else { XCTFail("\(text) accepted"); continue }
            XCTAssertFalse(e.message.contains(secret), e.message)
            XCTAssertTrue(e.message.contains("libvirt"), e.message)
        }
        for text in ["qemu+ssh://root:S3c%23ret@pm6/system", "qemu+ssh://op@127.0.0.1:2222/session?key%66ile=/k&no_verify=1",
                     "qemu+ssh://[::1]:22/system", "test:hosts/pm1.xml", "qemu:///system", "qemu+unix:///session?socket=/r/s"] {
            XCTAssertNoThrow(try HostURI.parse(text).get(), text)
        }
    }

    func testParseErrorsNeverEchoSecrets() {
        for text in ["qemu+ssh://admin:hunter2@pm4", "qemu+bogus://u:hunter2@h/system", "nope://u:hunter2@h/x"] {
            guard case .failure(let e) = HostURI.parse(text) else { return XCTFail("\(text) accepted") }
            XCTAssertFalse(e.message.contains("hunter2"), e.message)
        }
    }

    func testTestDriverShorthand() throws {
        let uri = try HostURI.parse("test:hosts/pm1.xml").get()
        XCTAssertEqual(uri.driver, "test")
        XCTAssertEqual(uri.relativeTestFile, "hosts/pm1.xml")
        XCTAssertNil(try HostURI.parse("test:///default").get().relativeTestFile)
        XCTAssertEqual(try HostURI.parse("qemu+ssh://pm1.example.org/system").get().transport, "ssh")
    }
}

final class SHA256Tests: XCTestCase {
    func testKnownVectors() {
        XCTAssertEqual(SHA256.hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(SHA256.hex(String(repeating: "a", count: 1000)),
                       "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
    }
}

final class FriendlyUnitErrorTests: XCTestCase {
    func testASpaceBetweenNumberAndUnitGetsAHint() {
        let yaml = """
            apiVersion: sandpiper/v1
            kind: Cluster
            name: t
            hosts: [{name: pm1, uri: "qemu:///system"}]
            vms: [{name: a, vcpus: 1, memory: 4 GiB}]
            """
        let d = SpecDecoder.check(yaml, file: "c.yaml") { _ in true }.diagnostics.map(\.description)
        XCTAssertEqual(d, ["c.yaml:5:35: vms[0].memory: \"4 GiB\" is not a size (use MiB, GiB or TiB, e.g. 512MiB or 2GiB); write it without a space: 4GiB"])
    }
}
