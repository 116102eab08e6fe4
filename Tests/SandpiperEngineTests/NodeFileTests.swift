import Foundation
import SandpiperEngine
import SandpiperSimulation
import SandpiperModel
import XCTest

/// Test-driver node files are checked before libvirt reads them: libvirt's test driver trusts their numbers
/// (`<vcpu>-1</vcpu>` wrapped to 4294967295 and aborted the process allocating 32 GiB, lock left behind).
final class NodeFileTests: XCTestCase {
    private let good = """
        <?xml version='1.0'?>
        <node>
          <cpu><mhz>2400</mhz><nodes>1</nodes><sockets>1</sockets><cores>8</cores><threads>1</threads><active>8</active></cpu>
          <memory>16777216</memory>
          <domain type='test'>
            <name>web1</name>
            <memory unit='MiB'>2048</memory>
            <currentMemory unit='MiB'>2048</currentMemory>
            <vcpu>2</vcpu>
          </domain>
        </node>
        """

    private func check(_ replace: String, with replacement: String) -> [String] {
        XCTAssertTrue(good.contains(replace), replace)
        let text = good.replacingOccurrences(of: replace, with: replacement)
        return TestNodeFile.check(Array(text.utf8), file: "hosts/pm1.xml").map(\.description)
    }

    func testTheBundledNodeFilesPass() throws {
        XCTAssertEqual(TestNodeFile.check(Array(good.utf8), file: "x.xml"), [])
        let clusters = repositoryRoot.appendingPathComponent("Clusters")
        var checked = 0
        for cluster in try FileManager.default.contentsOfDirectory(atPath: clusters.path) {
            let hosts = clusters.appendingPathComponent("\(cluster)/hosts")
            for name in (try? FileManager.default.contentsOfDirectory(atPath: hosts.path)) ?? [] where name.hasSuffix(".xml") {
                let bytes = try [UInt8](Data(contentsOf: hosts.appendingPathComponent(name)))
                XCTAssertEqual(TestNodeFile.check(bytes, file: name), [], "\(cluster)/\(name)")
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 10)
    }

    func testBadNumbersAreRefusedWithLineColumnAndField() {
        XCTAssertEqual(check("<vcpu>2</vcpu>", with: "<vcpu>-1</vcpu>"),
                       ["hosts/pm1.xml:9:5: domain[0].vcpu: \"-1\" is not a whole number from 1 to 4096 (domain web1)"])
        XCTAssertEqual(check("<vcpu>2</vcpu>", with: "<vcpu>100000</vcpu>"),
                       ["hosts/pm1.xml:9:5: domain[0].vcpu: \"100000\" is not a whole number from 1 to 4096 (domain web1)"])
        XCTAssertEqual(check("<vcpu>2</vcpu>", with: "<vcpu current='3'>2</vcpu>"),
                       ["hosts/pm1.xml:9:5: domain[0].vcpu@current: \"3\" is not a whole number from 1 to 2 (domain web1)"])
        XCTAssertEqual(check("<memory unit='MiB'>2048</memory>", with: "<memory unit='MiB'>-1</memory>"),
                       ["hosts/pm1.xml:7:5: domain[0].memory: \"-1\" MiB is not a memory size from 1 KiB to 1 PiB (domain web1)"])
        XCTAssertEqual(check("<memory unit='MiB'>2048</memory>", with: "<memory unit='PiB'>1</memory>"),
                       ["hosts/pm1.xml:7:5: domain[0].memory: unknown unit \"PiB\" (use KiB, MiB, GiB or TiB) (domain web1)"])
        XCTAssertEqual(check("<cores>8</cores>", with: "<cores>+8</cores>"),
                       ["hosts/pm1.xml:3:59: cpu.cores: \"+8\" is not a whole number from 1 to 4096"])
        XCTAssertEqual(check("<memory>16777216</memory>", with: "<memory>-1</memory>"),
                       ["hosts/pm1.xml:4:3: memory: \"-1\" is not a whole number from 1 to 1099511627776 KiB"])
        XCTAssertEqual(check("<name>web1</name>", with: ""),
                       ["hosts/pm1.xml:5:3: domain[0]: a domain needs a <name>"])
    }

    func testMalformedFilesAreRefused() {
        XCTAssertEqual(check("</node>", with: ""),
                       ["hosts/pm1.xml:10:12: not a well-formed XML node file (the file ends before </node>)"])
        XCTAssertEqual(check("<node>", with: "<nodes>").count, 1)
        XCTAssertEqual(check("<?xml version='1.0'?>\n<node>", with: "<host>\n<node>"),
                       ["hosts/pm1.xml:1:1: the root element is <host>; a test-driver node file starts with <node>"])
        XCTAssertEqual(check("<?xml version='1.0'?>\n", with: "<?xml version='1.0'?>\n<!DOCTYPE node [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>\n"),
                       ["hosts/pm1.xml:2:1: a node file may not declare a DTD or entities (<!DOCTYPE ...>)"])
        XCTAssertEqual(TestNodeFile.check([], file: "e.xml").count, 1)
    }

    /// The loader checks the node files the spec names, so every command refuses a bad one before libvirt sees it.
    func testTheLoaderRefusesABadNodeFile() throws {
        let dir = try copyBundledCluster("demo", into: try temporaryDirectory(self))
        let node = dir.appendingPathComponent("hosts/pm2.xml")
        try write(try String(contentsOf: node, encoding: .utf8).replacingOccurrences(of: "<vcpu>2</vcpu>", with: "<vcpu>-1</vcpu>"),
                  to: node)
        XCTAssertThrowsError(try ClusterLoader.load(dir.path)) { error in
            XCTAssertTrue("\(error)".contains("hosts/pm2.xml:"), "\(error)")
            XCTAssertTrue("\(error)".contains("vcpu: \"-1\" is not a whole number"), "\(error)")
        }
    }

    /// simulate never runs a power `status` command, even for a host whose node file libvirt refuses
    /// (it used to ask the status command whether such a host was on).
    func testSimulateNeverRunsAStatusCommand() throws {
        let root = try temporaryDirectory(self)
        let dir = try copyBundledCluster("diurnal", into: root)
        let marker = root.appendingPathComponent("status-ran")
        let script = root.appendingPathComponent("status.sh")
        try write("#!/bin/sh\ntouch '\(marker.path)'\necho on\n", to: script)
        XCTAssertEqual(chmod(script.path, 0o755), 0)
        let spec = dir.appendingPathComponent("cluster.yaml")
        let text = try String(contentsOf: spec, encoding: .utf8)
        let declared = "power: {on: [/bin/true], off: [/bin/true]}"
        let range = try XCTUnwrap(text.range(of: declared))
        try write(text.replacingCharacters(in: range, with: "power: {on: [/bin/true], off: [/bin/true], status: [\(script.path)]}"),
                  to: spec)
        // A node file that passes the loader's checks but that libvirt refuses: pm1 cannot be opened.
        let node = dir.appendingPathComponent("hosts/pm1.xml")
        let xml = try String(contentsOf: node, encoding: .utf8)
        let domain = try XCTUnwrap(xml.range(of: "<domain type='test'>"))
        try write(xml.replacingCharacters(in: domain, with: "<domain type='bogus'>"), to: node)

        let cluster = try ClusterLoader.load(dir.path)
        XCTAssertEqual(cluster.policy.consolidation.powerCommands, .allow, "the policy would allow the command")
        XCTAssertThrowsError(try Simulator(cluster: cluster, options: SimulationOptions(maxIntervals: 3)).run()) { error in
            XCTAssertTrue("\(error)".contains("pm1 cannot be reached"), "\(error)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: marker.path), "simulate ran the status command")
        // The oracle: outside simulate the same command does run (so the marker would show it).
        let connections = FleetConnections(cluster: cluster, readOnly: true)
        _ = connections.inventory(now: 0)
        XCTAssertTrue(FileManager.default.fileExists(atPath: marker.path), "the status command is reachable")
    }
}
