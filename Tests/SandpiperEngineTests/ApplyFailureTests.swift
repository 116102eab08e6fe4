import Foundation
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
        let xml = try DomainTemplate.render(template, vm: vm, uuid: "u")
        XCTAssertTrue(xml.contains("<cputune><vcpupin vcpu='0' cpuset='2'/><shares>4000</shares><period>100000</period><quota>150000</quota></cputune>"), xml)
        XCTAssertTrue(xml.contains("<memtune><swap_hard_limit unit='KiB'>9</swap_hard_limit><hard_limit unit='KiB'>2097152</hard_limit><soft_limit unit='KiB'>1048576</soft_limit></memtune>"), xml)
        XCTAssertTrue(xml.contains("<name>web1</name>"))
        XCTAssertTrue(xml.contains("<memoryBacking/>"), "elements that merely start alike are left alone")
        XCTAssertEqual(xml.components(separatedBy: "<cputune>").count, 2)

        let empty = try DomainTemplate.render("<domain type='test'><cputune/></domain>", vm: vm, uuid: "u")
        XCTAssertTrue(empty.contains("<cputune><shares>4000</shares><period>100000</period><quota>150000</quota></cputune>"), empty)
        XCTAssertFalse(empty.contains("<cputune/>"))
    }

    func testHostThatRefusesTuningGetsNoEntitlementElementsAndTheRefusalIsNamed() throws {
        let vm = VMSpec(name: "web1", vcpus: 1, memoryMiB: 512,
                        resources: ResourceControls(memory: ResourceControl(limit: 512)))
        let session = HostTuning(cpu: false, memory: false, reason: "QEMU in session mode has no cgroups")
        let xml = try DomainTemplate.render("<domain type='qemu'><name>N</name></domain>", vm: vm, uuid: "u", tuning: session)
        XCTAssertFalse(xml.contains("<cputune") || xml.contains("<memtune"), xml)
        XCTAssertEqual(DomainTemplate.refusedKnobs(vm, tuning: session),
                       "not written: <cputune> shares; <memtune> hard_limit (QEMU in session mode has no cgroups)")
        XCTAssertNil(DomainTemplate.refusedKnobs(vm, tuning: nil))
        let cpuOnly = try DomainTemplate.render("<domain type='qemu'></domain>", vm: vm, uuid: "u",
                                                tuning: HostTuning(cpu: true, memory: false))
        XCTAssertTrue(cpuOnly.contains("<cputune><shares>1000</shares></cputune>") && !cpuOnly.contains("<memtune"), cpuOnly)
    }

    func testVirtioBalloonGetsAStatsPeriodUnlessItHasOne() throws {
        let vm = VMSpec(name: "g", vcpus: 1, memoryMiB: 512)
        func render(_ devices: String) throws -> String {
            try DomainTemplate.render("<domain type='qemu'><devices>\(devices)</devices></domain>", vm: vm, uuid: "u")
        }
        XCTAssertTrue(try render("<memballoon model='virtio'></memballoon>").contains("<memballoon model='virtio'><stats period='2'/></memballoon>"))
        XCTAssertTrue(try render("<memballoon model='virtio'/>").contains("<memballoon model='virtio'><stats period='2'/></memballoon>"))
        XCTAssertTrue(try render("<memballoon model='virtio'><stats period='7'/></memballoon>").contains("<stats period='7'/></memballoon>"))
        XCTAssertEqual(try render("<memballoon model='virtio'><stats period='7'/></memballoon>").components(separatedBy: "<stats").count, 2)
        XCTAssertTrue(try render("<memballoon model='none'/>").contains("<memballoon model='none'/>"))
    }
}
