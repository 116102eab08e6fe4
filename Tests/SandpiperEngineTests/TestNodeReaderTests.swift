import Foundation
@testable import SandpiperEngine
import SandpiperLibvirt
import SandpiperModel
import SandpiperSimulation
import XCTest

/// `TestNodeReader` stands in for libvirt's test driver while a host is only observed: libvirt itself is the
/// oracle. Every node file the reader accepts must give exactly what a libvirt connection to it shows, and every
/// command must see the same fleet and print the same plan whichever path observed it.
final class TestNodeReaderTests: XCTestCase {
    /// What libvirt shows for `path`, next to what the reader read; uuids libvirt made up (the file has none) are
    /// left out.
    private func compare(_ path: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        let read = try XCTUnwrap(TestNodeReader.read(bytes), "the reader refused \(path)", file: file, line: line)
        // `TestNodeFile.check` passes what the reader accepts without its XMLParser rules: they must agree.
        XCTAssertEqual(TestNodeFile.checkWithParser(bytes, text: String(decoding: bytes, as: UTF8.self), file: path), [],
                       path, file: file, line: line)
        let c = try LibvirtConnection(uri: "test://" + path, readOnly: true)
        defer { c.close() }
        let info = try c.hostInfo()
        XCTAssertEqual(read.cpus, info.cpus, path, file: file, line: line)
        XCTAssertEqual(read.memoryMiB, info.memoryMiB, path, file: file, line: line)
        var domains = try c.domains()
        for i in domains.indices where read.domains.first(where: { $0.name == domains[i].name })?.uuid == "" {
            domains[i].uuid = ""
        }
        XCTAssertEqual(read.domains, domains, path, file: file, line: line)
    }

    func testEveryBundledNodeFileReadsAsLibvirtShowsIt() throws {
        let clusters = repositoryRoot.appendingPathComponent("Clusters")
        var compared = 0
        for cluster in try FileManager.default.contentsOfDirectory(atPath: clusters.path).sorted() {
            let hosts = clusters.appendingPathComponent("\(cluster)/hosts")
            for name in (try? FileManager.default.contentsOfDirectory(atPath: hosts.path)) ?? [] where name.hasSuffix(".xml") {
                try compare(hosts.appendingPathComponent(name).path)
                compared += 1
            }
        }
        XCTAssertGreaterThan(compared, 10)
    }

    func testGeneratedNodeFilesReadAsLibvirtShowsThem() throws {
        let root = try temporaryDirectory(self)
        let files = try GeneratedCluster.write(hosts: 12, vms: 240, intervals: 2, under: root)
        let hosts = files.directory.appendingPathComponent("hosts")
        let names = try FileManager.default.contentsOfDirectory(atPath: hosts.path)
        XCTAssertEqual(names.count, 12)
        for name in names { try compare(hosts.appendingPathComponent(name).path) }
    }

    private func node(cpu: String = "<mhz>2400</mhz><nodes>1</nodes><sockets>1</sockets><cores>8</cores><threads>1</threads><active>8</active>",
                      memory: String = "<memory>16777216</memory>", domains: [String]) -> String {
        "<?xml version='1.0'?>\n<node>\n  <cpu>\(cpu)</cpu>\n  \(memory)\n" + domains.map { "  " + $0 + "\n" }.joined() + "</node>\n"
    }

    private func domain(_ name: String, _ body: String = "<memory unit='MiB'>512</memory><vcpu>1</vcpu>",
                        os: String = "<os><type arch='x86_64'>hvm</type></os>") -> String {
        "<domain type='test'><name>\(name)</name>\(body)\(os)</domain>"
    }

    /// The rules the reader reproduces (units and rounding up to KiB, balloon clamping, current vCPUs, the CPU
    /// count capped by `active`), each on a file libvirt reads too.
    func testEdgeCasesReadAsLibvirtShowsThem() throws {
        let dir = try temporaryDirectory(self)
        let cases: [String] = [
            node(domains: []),
            node(domains: [
                domain("bytes", "<memory unit='b'>1025</memory><vcpu>1</vcpu>"),
                domain("bytes2", "<memory unit='bytes'>1048577</memory><currentMemory unit='b'>1025</currentMemory><vcpu>1</vcpu>"),
                domain("kb", "<memory unit='KB'>3000001</memory><vcpu>2</vcpu>"),
                domain("k", "<memory unit='k'>2049</memory><currentMemory unit='KiB'>1025</currentMemory><vcpu>2</vcpu>"),
                domain("default-unit", "<memory>4096</memory><vcpu>3</vcpu>"),
                domain("mb", "<memory unit='MB'>3</memory><vcpu>1</vcpu>"),
                domain("m", "<memory unit='M'>700</memory><currentMemory unit='MiB'>900</currentMemory><vcpu>1</vcpu>"),
                domain("gb", "<memory unit='GB'>3</memory><currentMemory unit='TB'>1</currentMemory><vcpu>2</vcpu>"),
                domain("g", "<memory unit='G'>2</memory><currentMemory unit='GiB'>1</currentMemory><vcpu current='3'>8</vcpu>"),
                domain("t", "<memory unit='T'>1</memory><currentMemory unit='TiB'>1</currentMemory><vcpu current='1'>4096</vcpu>"),
            ]),
            node(domains: [
                domain("i686", os: "<os><type arch='i686'>hvm</type></os>"),
                domain("no-arch", os: "<os><type>hvm</type></os>"),
                "<domain type=\"test\">\n  <!-- a comment -->\n  <name>spaced</name>\n  <uuid>ABCDEF01-2345-4789-8ABC-DEF012345678</uuid>\n"
                    + "  <memory unit=\"MiB\">64</memory>\n  <vcpu current = '1' >2</vcpu>\n  <os>\n    <type arch=\"x86_64\">hvm</type>\n  </os>\n</domain >",
            ]),
            node(cpu: "<mhz>1</mhz><model>i686</model><nodes>2</nodes><sockets>2</sockets><cores>4</cores><threads>2</threads><active>40</active>",
                 domains: [domain("a")]),
            node(cpu: "<nodes>2</nodes><sockets>2</sockets><cores>4</cores><threads>2</threads><active>5</active>", domains: [domain("a")]),
            node(cpu: "<nodes>1</nodes><sockets>3</sockets><cores>5</cores><threads>1</threads>", memory: "<memory>1023</memory>",
                 domains: [domain("a")]),
            "<!-- before --><node><cpu><nodes>1</nodes><sockets>1</sockets><cores>2</cores><threads>1</threads></cpu>"
                + "<memory>2097152</memory><domain type='test'><name>x.y_z-1</name><memory unit='GiB'>1</memory><vcpu>1</vcpu>"
                + "<os><type>hvm</type></os></domain></node><!-- after -->\n",
            "<?xml version=\"1.0\" encoding=\"utf-8\" standalone=\"yes\"?>\r\n<node>\r\n<cpu><nodes>1</nodes><sockets>1</sockets>"
                + "<cores>2</cores><threads>1</threads></cpu>\r\n<memory>2097152</memory>\r\n</node>\r\n",
        ]
        for (i, text) in cases.enumerated() {
            let path = dir.appendingPathComponent("case\(i).xml").path
            try write(text, to: URL(fileURLWithPath: path))
            try compare(path)
        }
    }

    /// Anything outside the subset is left to libvirt (nil), including files libvirt itself refuses.
    func testFilesOutsideTheSubsetAreLeftToLibvirt() {
        let refused: [String: String] = [
            "devices": node(domains: [domain("a", "<memory unit='MiB'>512</memory><vcpu>1</vcpu><devices/>")]),
            "runstate": node(domains: ["<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>"
                + "<name>a</name><memory>512</memory><vcpu>1</vcpu><os><type>hvm</type></os><test:runstate>5</test:runstate></domain>"]),
            "kvm type": node(domains: [domain("a").replacingOccurrences(of: "type='test'", with: "type='kvm'")]),
            "entity": node(domains: [domain("a&amp;b")]),
            "cdata": node(domains: [domain("<![CDATA[a]]>")]),
            "non-ASCII": node(domains: [domain("caf\u{e9}")]),
            "blank in a number": node(domains: [domain("a", "<memory unit='MiB'> 512</memory><vcpu>1</vcpu>")]),
            "sign": node(domains: [domain("a", "<memory unit='MiB'>+512</memory><vcpu>1</vcpu>")]),
            "zero vCPUs": node(domains: [domain("a", "<memory unit='MiB'>512</memory><vcpu>0</vcpu>")]),
            "current above maximum": node(domains: [domain("a", "<memory unit='MiB'>512</memory><vcpu current='3'>2</vcpu>")]),
            "unknown unit": node(domains: [domain("a", "<memory unit='PiB'>1</memory><vcpu>1</vcpu>")]),
            "no memory": node(domains: [domain("a", "<vcpu>1</vcpu>")]),
            "no os": node(domains: [domain("a", os: "")]),
            "xen": node(domains: [domain("a", os: "<os><type>xen</type></os>")]),
            "same name": node(domains: [domain("a"), domain("a")]),
            "same uuid": node(domains: [
                domain("a", "<uuid>11111111-2222-4333-8444-000000000001</uuid><memory>512</memory><vcpu>1</vcpu>"),
                domain("b", "<uuid>11111111-2222-4333-8444-000000000001</uuid><memory>512</memory><vcpu>1</vcpu>"),
            ]),
            "short uuid": node(domains: [domain("a", "<uuid>1234</uuid><memory>512</memory><vcpu>1</vcpu>")]),
            "default topology": node(cpu: "<cores>8</cores>", domains: []),
            "no node memory": node(memory: "", domains: []),
            "network": node(domains: []).replacingOccurrences(of: "</node>", with: "<network><name>n</name></network></node>"),
            "external domain file": node(domains: ["<domain file='other.xml'/>"]),
            "unclosed": node(domains: [domain("a")]).replacingOccurrences(of: "</node>", with: ""),
            "mismatched": node(domains: [domain("a")]).replacingOccurrences(of: "</name>", with: "</nam>"),
            "DTD": "<!DOCTYPE node>\n" + node(domains: []),
            "processing instruction": node(domains: []).replacingOccurrences(of: "<node>", with: "<node><?pi x?>"),
            "second root": node(domains: []) + "<node/>",
            "text in node": node(domains: []).replacingOccurrences(of: "<node>", with: "<node>junk"),
        ]
        for (why, text) in refused.sorted(by: { $0.key < $1.key }) {
            XCTAssertNil(TestNodeReader.read(Array(text.utf8)), why)
        }
    }

    // MARK: - Whole-fleet equivalence

    private func inventories(_ cluster: LoadedCluster) -> (files: FleetInventory, libvirt: FleetInventory) {
        let now = 1000.0
        let fromFiles = FleetConnections(cluster: cluster, readOnly: true)
        defer { fromFiles.closeAll() }
        let fromLibvirt = FleetConnections(cluster: cluster, readOnly: true, readsTestNodeFiles: false)
        defer { fromLibvirt.closeAll() }
        return (fromFiles.inventory(now: now), fromLibvirt.inventory(now: now))
    }

    private func planBytes(_ cluster: LoadedCluster, readsTestNodeFiles: Bool) throws -> Data {
        let connections = FleetConnections(cluster: cluster, readOnly: true, readsTestNodeFiles: readsTestNodeFiles)
        defer { connections.closeAll() }
        let snapshot = try Engine.observe(cluster, connections: connections, state: nil)
        return try Engine.plan(cluster, snapshot: snapshot, state: nil).encoded()
    }

    /// `observe` and `plan` see the same fleet and print the same plan, byte for byte, from the node files as
    /// from libvirt: on every bundled cluster and on a generated one with hotspots to resolve.
    func testObservationsAndPlansAreIdenticalOnBothPaths() throws {
        let paths = try generatedAndBundledClusterPaths(under: temporaryDirectory(self))
        var withActions = 0
        for path in paths {
            let cluster = try ClusterLoader.load(path)
            let (files, libvirt) = inventories(cluster)
            XCTAssertEqual(files, libvirt, path)
            XCTAssertFalse(files.vms.isEmpty, path)
            let plan = try planBytes(cluster, readsTestNodeFiles: true)
            XCTAssertEqual(plan, try planBytes(cluster, readsTestNodeFiles: false), path)
            if try PlanDocument.decode(plan).hasChanges { withActions += 1 }
        }
        XCTAssertGreaterThan(withActions, 0, "some plan must have actions, or the comparison shows little")
    }

    /// A host whose node file is outside the subset is opened through libvirt; the others are read from their
    /// files; together they show what libvirt alone shows.
    func testAMixedClusterMatchesLibvirt() throws {
        let dir = try copyBundledCluster("demo", into: try temporaryDirectory(self))
        let pm2 = dir.appendingPathComponent("hosts/pm2.xml")
        let text = try String(contentsOf: pm2, encoding: .utf8)
        try write(text.replacingOccurrences(of: "<os>", with: "<on_crash>destroy</on_crash><os>"), to: pm2)
        XCTAssertNil(TestNodeReader.read(Array(try Data(contentsOf: pm2))))
        let cluster = try ClusterLoader.load(dir.path)
        let (files, libvirt) = inventories(cluster)
        XCTAssertEqual(files, libvirt)
        XCTAssertEqual(files.vms.filter { $0.host == "pm2" }.count, text.components(separatedBy: "<domain").count - 1)
    }

    /// `simulate` acts on hosts (migrations, balloons, power): a host is opened when it is first acted on and
    /// libvirt starts from the same file, and reads are reused only until the next apply, so the whole report is
    /// the same as with every host opened at start and read every interval.
    func testSimulateReportsAreIdenticalOnBothPaths() throws {
        for name in ["demo", "paper-3pm", "diurnal", "memory-pressure"] {
            let cluster = try ClusterLoader.load(repositoryRoot.appendingPathComponent("Clusters/\(name)").path)
            let lazy = try Simulator(cluster: cluster).run()
            let eager = try Simulator(cluster: cluster)
            eager.connect = { FleetConnections(cluster: $0, runsStatusCommands: false, readsTestNodeFiles: false) }
            eager.reusesReads = false
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            XCTAssertEqual(String(decoding: try encoder.encode(lazy), as: UTF8.self),
                           String(decoding: try encoder.encode(try eager.run()), as: UTF8.self), name)
            XCTAssertGreaterThan(lazy.migrations + lazy.balloonChanges, 0, name)
        }
    }
}
