import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import SandpiperEngine
import SandpiperLibvirt
import SandpiperModel
import XCTest

/// A real test-driver host with failures injected where the test driver itself would accept everything.
final class FaultyHost: FleetHost, @unchecked Sendable {
    enum Fault { case memoryTune(LibvirtError), migrate(LibvirtError) }
    let real: LibvirtConnection
    let faults: [Fault]
    init(_ real: LibvirtConnection, _ faults: [Fault]) { self.real = real; self.faults = faults }

    var underlying: LibvirtConnection? { real }
    func hostInfo() throws(LibvirtError) -> HostInfo { try real.hostInfo() }
    func domains() throws(LibvirtError) -> [DomainInfo] { try real.domains() }
    func domain(named name: String) throws(LibvirtError) -> DomainInfo { try real.domain(named: name) }
    func domainIfExists(named name: String) throws(LibvirtError) -> DomainInfo? { try real.domainIfExists(named: name) }
    func define(xml: String) throws(LibvirtError) -> String { try real.define(xml: xml) }
    func start(_ name: String) throws(LibvirtError) { try real.start(name) }
    func destroy(_ name: String) throws(LibvirtError) { try real.destroy(name) }
    func undefine(_ name: String) throws(LibvirtError) { try real.undefine(name) }
    func setVcpus(_ name: String, count: Int, scope: ChangeScope) throws(LibvirtError) {
        try real.setVcpus(name, count: count, scope: scope)
    }
    func setMemory(_ name: String, mib: UInt64, scope: ChangeScope) throws(LibvirtError) {
        try real.setMemory(name, mib: mib, scope: scope)
    }
    func setCPUTune(_ name: String, _ tune: CPUTune, scope: ChangeScope) throws(LibvirtError) {
        try real.setCPUTune(name, tune, scope: scope)
    }
    func setMemoryTune(_ name: String, hardLimit: MemoryLimit?, softLimit: MemoryLimit?,
                       scope: ChangeScope) throws(LibvirtError) {
        for case .memoryTune(let e) in faults { throw e }
        try real.setMemoryTune(name, hardLimit: hardLimit, softLimit: softLimit, scope: scope)
    }
    func migrate(_ name: String, to target: any FleetHost, mode: SandpiperLibvirt.MigrationMode, allowCold: Bool,
                 options: LiveMigrationOptions) throws(LibvirtError) -> MigrationReport {
        for case .migrate(let e) in faults { throw e }
        return try real.migrate(name, to: target, mode: mode, allowCold: allowCold, options: options)
    }
}

final class ApplyFailureTests: XCTestCase {
    func demo() throws -> (LoadedCluster, FleetConnections, FleetSnapshot, PlanDocument) {
        let root = try temporaryDirectory(self)
        let cluster = try ClusterLoader.load(try copyBundledCluster("demo", into: root).path)
        let connections = FleetConnections(cluster: cluster)
        addTeardownBlock { connections.closeAll() }
        let snapshot = try Engine.observe(cluster, connections: connections, state: nil)
        return (cluster, connections, snapshot, Engine.plan(cluster, snapshot: snapshot, state: nil))
    }

    /// A memtune the host refuses (not "unsupported": the connection broke) fails its action instead of being
    /// journaled as done; the other actions of the wave still run.
    func testARefusedTuneFailsItsActionAndNothingElse() throws {
        let (cluster, connections, _, document) = try demo()
        let broken = LibvirtError(code: LibvirtError.Code.rpc, domain: 7, message: "End of file while reading data")
        var options = ApplyOptions()
        options.host = { name in
            guard let real = connections.connection(name) else { return nil }
            return name == "pm2" ? FaultyHost(real, [.memoryTune(broken)]) : real
        }
        let applier = Applier(cluster: cluster, connections: connections, state: nil, options: options)
        let report = try applier.apply(document)
        XCTAssertFalse(report.succeeded)
        let web2 = try XCTUnwrap(document.actions.first { $0.kind == .tune && $0.vm == "web2" })
        let outcome = try XCTUnwrap(report.outcomes.first { $0.actionID == web2.id })
        XCTAssertEqual(outcome.status, .failed)
        XCTAssertTrue(outcome.detail?.contains("End of file while reading data") == true, outcome.detail ?? "")
        XCTAssertEqual(report.outcomes.filter { $0.status == .done }.count, document.actions.count - 1)
        let state = try XCTUnwrap(try StateFile(directory: cluster.directory).read())
        XCTAssertEqual(state.journal.last { $0.actionID == web2.id }?.status, .failed)
        XCTAssertEqual(state.lastPlan?.status, "failed")
    }

    /// A migration that breaks leaves the VM where libvirt says it is, and the state says the same.
    func testABrokenMigrationLeavesStateTrueToTheFleet() throws {
        let (cluster, connections, _, document) = try demo()
        let aborted = LibvirtError(code: LibvirtError.Code.operationAborted, domain: 10, message: "migration job: canceled by client")
        var options = ApplyOptions()
        options.host = { name in
            guard let real = connections.connection(name) else { return nil }
            return name == "pm2" ? FaultyHost(real, [.migrate(aborted)]) : real
        }
        let applier = Applier(cluster: cluster, connections: connections, state: nil, options: options)
        let report = try applier.apply(document)
        let move = try XCTUnwrap(document.actions.first { $0.kind == .migrate })
        XCTAssertEqual(report.outcomes.first { $0.actionID == move.id }?.status, .failed)
        XCTAssertEqual(try connections.connection("pm2")!.domain(named: "batch1").state, .running)
        let state = try XCTUnwrap(try StateFile(directory: cluster.directory).read())
        XCTAssertEqual(state.inventory?.vms.first { $0.name == "batch1" }?.host, "pm2")
        XCTAssertNil(state.inventory?.vms.first { $0.name == "batch1" }?.lastMovedAt, "it did not move")
    }
}

final class UnrelatedOutageTests: XCTestCase {
    /// pm1 stops answering after the plan was made; a plan that does not touch pm1 stays fresh, one that does
    /// is stale and says why.
    func testAnOutageMakesStaleOnlyThePlansThatNeedTheHost() throws {
        let root = try temporaryDirectory(self)
        let cluster = try ClusterLoader.load(try copyBundledCluster("demo", into: root).path)
        let connections = FleetConnections(cluster: cluster)
        defer { connections.closeAll() }
        var state = StateDocument(cluster: "demo")
        state.record(try Engine.observe(cluster, connections: connections, state: nil).observation)
        state = try StateFile(directory: cluster.directory).write(state)
        let full = Engine.plan(cluster, snapshot: try Engine.observe(cluster, connections: connections, state: state),
                               state: state)
        var elsewhere = full
        elsewhere.actions = full.actions.filter { $0.from != "pm1" && $0.to != "pm1" }
        XCTAssertFalse(elsewhere.actions.isEmpty)

        connections.markUnknown("pm1", reason: "connection reset")
        let applier = Applier(cluster: cluster, connections: connections, state: state)
        XCTAssertEqual(applier.staleness(of: elsewhere, stateBefore: state), [])
        XCTAssertEqual(applier.staleness(of: full, stateBefore: state), ["host pm1 is unreachable (connection reset)"])
    }
}

final class PowerCommandTests: XCTestCase {
    func testTheDeadlineCoversTheWholeProcessGroup() throws {
        let start = Date()
        let r = try PowerCommand(argv: ["/bin/sh", "-c", "sleep 20; echo late"], timeoutSeconds: 1).run()
        XCTAssertTrue(r.timedOut)
        XCTAssertFalse(r.succeeded)
        XCTAssertLessThan(Date().timeIntervalSince(start), 5, "a wrapper's child must not outlive the deadline")
        XCTAssertFalse(r.output.contains("late"))
    }

    func testAHelperLeftRunningDoesNotHoldTheResultBack() throws {
        let start = Date()
        let r = try PowerCommand(argv: ["/bin/sh", "-c", "sleep 8 & echo on"], timeoutSeconds: 3).run()
        XCTAssertTrue(r.succeeded, r.summary)
        XCTAssertEqual(r.output.trimmingCharacters(in: .whitespacesAndNewlines), "on")
        XCTAssertLessThan(Date().timeIntervalSince(start), 2.5)
    }

    func testExitCodeAndOutput() throws {
        let r = try PowerCommand(argv: ["/bin/sh", "-c", "echo Chassis Power is off; exit 3"], timeoutSeconds: 5).run()
        XCTAssertEqual(r.exitCode, 3)
        XCTAssertEqual(PowerCommand.poweredOn(statusOutput: r.output), false)
        XCTAssertThrowsError(try PowerCommand(argv: ["sh", "-c", "true"], timeoutSeconds: 1).run())
    }
}

final class DomainTemplateTests: XCTestCase {
    /// The rendered XML parsed back: assertions are about structure and values, not about quoting or spacing.
    private func parsed(_ xml: String, file: StaticString = #filePath, line: UInt = #line) throws -> XMLDocument {
        do { return try XMLDocument(xmlString: xml, options: []) } catch {
            XCTFail("render produced unparsable XML: \(error)\n\(xml)", file: file, line: line)
            throw error
        }
    }

    private func values(_ doc: XMLDocument, _ xpath: String) throws -> [String] {
        try doc.nodes(forXPath: xpath).map { $0.stringValue ?? "" }
    }

    /// Names of the element children of the element at `xpath`, in order.
    private func childNames(_ doc: XMLDocument, _ xpath: String) throws -> [String] {
        try doc.nodes(forXPath: xpath + "/*").map { $0.name ?? "" }
    }

    func testEntitlementsMergeIntoTheOperatorsTuningElements() throws {
        let template = """
            <domain type='kvm'>
              <name>NAME</name>
              <cputune><vcpupin vcpu='0' cpuset='2'/><shares>10</shares></cputune>
              <memtune><swap_hard_limit unit='KiB'>9</swap_hard_limit></memtune>
              <devices><memoryBacking/></devices>
            </domain>
            """
        let vm = VMSpec(name: "web1", vcpus: 2, memoryMiB: 2048,
                        resources: ResourceControls(cpu: ResourceControl(reservation: 0.5, limit: 1.5, shares: .high),
                                                    memory: ResourceControl(reservation: 1024, limit: 2048)))
        let doc = try parsed(try DomainTemplate.render(template, vm: vm, uuid: "u"))
        XCTAssertEqual(try childNames(doc, "/domain/cputune"), ["vcpupin", "shares", "period", "quota"])
        XCTAssertEqual(try values(doc, "/domain/cputune/vcpupin/@cpuset"), ["2"], "the operator's pinning is kept")
        XCTAssertEqual(try values(doc, "/domain/cputune/shares"), ["4000"])
        XCTAssertEqual(try values(doc, "/domain/cputune/period"), ["100000"])
        XCTAssertEqual(try values(doc, "/domain/cputune/quota"), ["150000"])
        XCTAssertEqual(try childNames(doc, "/domain/memtune"), ["swap_hard_limit", "hard_limit", "soft_limit"])
        XCTAssertEqual(try values(doc, "/domain/memtune/swap_hard_limit"), ["9"])
        XCTAssertEqual(try values(doc, "/domain/memtune/hard_limit"), ["2097152"])
        XCTAssertEqual(try values(doc, "/domain/memtune/hard_limit/@unit"), ["KiB"])
        XCTAssertEqual(try values(doc, "/domain/memtune/soft_limit"), ["1048576"])
        XCTAssertEqual(try values(doc, "/domain/memtune/soft_limit/@unit"), ["KiB"])
        XCTAssertEqual(try values(doc, "/domain/name"), ["web1"])
        XCTAssertEqual(try values(doc, "/domain/uuid"), ["u"])
        XCTAssertEqual(try values(doc, "/domain/vcpu"), ["2"])
        XCTAssertEqual(try values(doc, "/domain/memory"), ["2097152"])
        XCTAssertEqual(try values(doc, "/domain/currentMemory"), ["2097152"])
        XCTAssertEqual(try values(doc, "/domain/@type"), ["kvm"])
        XCTAssertEqual(try childNames(doc, "/domain/devices"), ["memoryBacking"],
                       "elements that merely start alike (<memoryBacking> vs <memory>) are left alone")
        XCTAssertEqual(try doc.nodes(forXPath: "//cputune").count, 1)

        let empty = try parsed(try DomainTemplate.render("<domain type='test'><cputune/></domain>", vm: vm, uuid: "u"))
        XCTAssertEqual(try childNames(empty, "/domain/cputune"), ["shares", "period", "quota"], "<cputune/> is filled")
        XCTAssertEqual(try values(empty, "/domain/cputune/shares"), ["4000"])
        XCTAssertEqual(try values(empty, "/domain/cputune/quota"), ["150000"])
        XCTAssertEqual(try empty.nodes(forXPath: "//cputune").count, 1)
    }

    func testHostThatRefusesTuningGetsNoEntitlementElementsAndTheRefusalIsNamed() throws {
        let vm = VMSpec(name: "web1", vcpus: 1, memoryMiB: 512,
                        resources: ResourceControls(memory: ResourceControl(limit: 512)))
        let session = HostTuning(cpu: false, memory: false, reason: "QEMU in session mode has no cgroups")
        let doc = try parsed(try DomainTemplate.render("<domain type='qemu'><name>N</name></domain>", vm: vm, uuid: "u",
                                                       tuning: session))
        XCTAssertTrue(try doc.nodes(forXPath: "//cputune | //memtune").isEmpty, doc.xmlString)
        XCTAssertEqual(try values(doc, "/domain/name"), ["web1"])
        XCTAssertEqual(DomainTemplate.refusedKnobs(vm, tuning: session),
                       "not written: <cputune> shares; <memtune> hard_limit (QEMU in session mode has no cgroups)")
        XCTAssertNil(DomainTemplate.refusedKnobs(vm, tuning: nil))
        let cpuOnly = try parsed(try DomainTemplate.render("<domain type='qemu'></domain>", vm: vm, uuid: "u",
                                                           tuning: HostTuning(cpu: true, memory: false)))
        XCTAssertEqual(try childNames(cpuOnly, "/domain/cputune"), ["shares"])
        XCTAssertEqual(try values(cpuOnly, "/domain/cputune/shares"), ["1000"])
        XCTAssertTrue(try cpuOnly.nodes(forXPath: "//memtune").isEmpty, cpuOnly.xmlString)
        XCTAssertEqual(try childNames(cpuOnly, "/domain"), ["name", "uuid", "memory", "currentMemory", "vcpu", "cputune"],
                       "absent elements are added to <domain>")
        XCTAssertEqual(try values(cpuOnly, "/domain/memory/@unit"), ["KiB"])
    }

    func testVirtioBalloonGetsAStatsPeriodUnlessItHasOne() throws {
        let vm = VMSpec(name: "g", vcpus: 1, memoryMiB: 512)
        func render(_ devices: String) throws -> XMLDocument {
            try parsed(try DomainTemplate.render("<domain type='qemu'><devices>\(devices)</devices></domain>",
                                                 vm: vm, uuid: "u"))
        }
        let balloon = "/domain/devices/memballoon"
        XCTAssertEqual(try values(try render("<memballoon model='virtio'></memballoon>"), balloon + "/stats/@period"), ["2"])
        XCTAssertEqual(try values(try render("<memballoon model='virtio'/>"), balloon + "/stats/@period"), ["2"])
        XCTAssertEqual(try values(try render("<memballoon model='virtio'><stats period='7'/></memballoon>"),
                                  balloon + "/stats/@period"), ["7"], "the operator's period is kept, not doubled")
        let none = try render("<memballoon model='none'/>")
        XCTAssertEqual(try values(none, balloon + "/@model"), ["none"])
        XCTAssertEqual(try childNames(none, balloon), [], "only a virtio balloon gets statistics")
    }

    func testOnlyTheDomainsOwnNameIsSetNotOneNestedDeeperOrInAComment() throws {
        let template = """
            <domain type='qemu'>
              <!-- <name>placeholder</name> <vcpu>99</vcpu> -->
              <metadata><app:info xmlns:app='urn:example'><app:name>keep-me</app:name></app:info></metadata>
              <devices>
                <disk type='file'><source file='/x.img'/><target dev='vda'/></disk>
                <hostdev><metadata><name>nested-device-name</name></metadata></hostdev>
              </devices>
              <name>NAME</name>
            </domain>
            """
        let xml = try DomainTemplate.render(template, vm: VMSpec(name: "db1", vcpus: 3, memoryMiB: 256), uuid: "u")
        let doc = try parsed(xml)
        XCTAssertEqual(try values(doc, "/domain/name"), ["db1"])
        XCTAssertEqual(try values(doc, "/domain/devices/hostdev/metadata/name"), ["nested-device-name"], xml)
        XCTAssertEqual(try doc.nodes(forXPath: "//*[local-name()='name' and text()='keep-me']").count, 1, xml)
        XCTAssertEqual(try values(doc, "/domain/vcpu"), ["3"])
        XCTAssertEqual(try doc.nodes(forXPath: "//vcpu").count, 1, "the comment's <vcpu> is not an element")
        let comments = try values(doc, "//comment()")
        XCTAssertEqual(comments, [" <name>placeholder</name> <vcpu>99</vcpu> "], "the comment stays a comment, untouched")
        XCTAssertEqual(try values(doc, "/domain/devices/disk/source/@file"), ["/x.img"])
    }

    func testMalformedTemplateIsRefusedNamingTheVMAndTheFault() {
        let vm = VMSpec(name: "web9", vcpus: 1, memoryMiB: 256)
        let cases: [(String, String)] = [
            ("<domain type='qemu'><name>x</domain>", "not well-formed XML at line 1"),
            ("<domain type='qemu'><name>x</name>", "ends before </domain>"),
            ("not xml at all", "not well-formed XML"),
            ("", "is empty"),
            ("<!-- only a comment -->", "is empty"),
            ("<domain>&undeclared;</domain>", "not well-formed XML"),
            ("<!DOCTYPE d [<!ENTITY x 'y'>]><domain>&x;</domain>", "may not declare a DTD"),
            ("<node><name>x</name></node>", "has <node> as its root, not <domain>"),
        ]
        for (template, expected) in cases {
            XCTAssertThrowsError(try DomainTemplate.render(template, vm: vm, uuid: "u"), template) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains("template for web9"), text)
                XCTAssertTrue(text.contains(expected), "\(template): \(text)")
            }
        }
    }
}
