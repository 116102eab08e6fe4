import Foundation
import SandpiperEngine
import SandpiperLibvirt
import SandpiperModel
import SandpiperTestSupport
import XCTest

/// Entitlements take effect on root-mode daemons (cgroups): a busy Linux guest whose spec sets a CPU limit gets a
/// `tune` (CFS quota), apply sets it, and the guest's measured cpu.time rate then stays under the limit.
final class QemuRootTuneTests: XCTestCase {
    func testCPULimitTuneCapsABusyGuest() throws {
        if let reason = LinuxGuest.unavailableReason() { throw XCTSkip(reason) }
        let shared = try SharedQemuLab.get(.root)
        let vm = "rt-busy"
        shared.removeGuests([vm])
        defer { shared.removeGuests([vm]) }
        try shared.startGuest(vm, on: "A", uuid: "4e4e4e4e-0000-4000-8000-000000000001", load: "cpu")
        let before = try cpuRate(shared.a, vm, seconds: 4)
        XCTAssertGreaterThan(before, 0.7, "a busy loop uses more than the limit to come")

        let root = try temporaryDirectory(self)
        try LabCluster.writePolicy(root: root)
        let dir = try LabCluster.write(
            root: root, name: "rt", hosts: [("a", shared.uri("A"))],
            vms: ["{name: \(vm), vcpus: 1, memory: 512MiB, placement: {host: a}, resources: {cpu: {limit: 0.5}, memory: {limit: 600MiB}}}"],
            trace: [.init(vm, cpu: 0.2, memMiB: 100, guestFreeMiB: 300)])

        let cluster = try ClusterLoader.load(dir.path)
        let connections = FleetConnections(cluster: cluster)
        defer { connections.closeAll() }
        let snapshot = try Engine.observe(cluster, connections: connections, state: nil)
        XCTAssertNil(snapshot.observation.hosts.first?.tuning, "a root daemon takes every knob")
        let document = Engine.plan(cluster, snapshot: snapshot, state: nil)
        let tune = try XCTUnwrap(document.actions.first { $0.kind == .tune && $0.vm == vm }, "\(document.actions.map(\.reason))")
        XCTAssertEqual(tune.parameters.cpuQuotaMicros, 50_000)
        let report = try Applier(cluster: cluster, connections: connections, state: nil).apply(document)
        XCTAssertTrue(report.succeeded, "\(report.outcomes)")
        XCTAssertTrue(report.outcomes.allSatisfy { $0.detail == nil }, "nothing refused: \(report.outcomes)")

        let info = try shared.a.domain(named: vm)
        XCTAssertEqual(info.cpuTune?.quota, 50_000)
        XCTAssertEqual(info.memoryTune?.hardLimitMiB, 600)
        // In effect: the busy guest now gets at most its limit (plus a little for QEMU's own threads).
        let after = try cpuRate(shared.a, vm, seconds: 4)
        print(String(format: "cpu limit 0.5: before %.2f cores, after %.2f", before, after))
        XCTAssertLessThanOrEqual(after, 0.55, "capped at 0.5 core (was \(before))")
        XCTAssertGreaterThan(after, 0.35, "still running")
        // Converged: the next plan has nothing to tune.
        let next = Engine.plan(cluster, snapshot: try Engine.observe(cluster, connections: connections, state: nil), state: nil)
        XCTAssertEqual(next.actions.filter { $0.kind == .tune }.map(\.reason), [])
    }

    /// Shares take effect under contention: two busy 1-vCPU guests pinned to one host CPU (vcpupin and
    /// emulatorpin to CPU 0, so they compete for one core whatever else the box runs), `shares: high` (2000) and
    /// `shares: low` (500). Before the tune they split the core about evenly; after apply the measured CPU time
    /// ratio is within 25% of the 4:1 shares ratio.
    func testSharesDivideAContendedCoreByTheirRatio() throws {
        if let reason = LinuxGuest.unavailableReason() { throw XCTSkip(reason) }
        let shared = try SharedQemuLab.get(.root)
        let high = "rt-high", low = "rt-low"
        shared.removeGuests([high, low])
        defer { shared.removeGuests([high, low]) }
        for (i, name) in [high, low].enumerated() {
            var xml = try LinuxGuest.xml(name: name, uuid: "4e4e4e4e-0000-4000-8000-00000000001\(i)", load: "cpu")
            let pin = "<cputune><vcpupin vcpu='0' cpuset='0'/><emulatorpin cpuset='0'/></cputune>"
            guard let vcpu = xml.range(of: "</vcpu>") else { return XCTFail("no <vcpu> in the guest XML") }
            xml.insert(contentsOf: "\n  " + pin, at: vcpu.upperBound)
            _ = try shared.a.define(xml: xml)
            try shared.a.start(name)
            try LinuxGuest.waitUntilReady(shared.a, name).close()
        }
        let even = try cpuRates(shared.a, [high, low], seconds: 6)
        XCTAssertLessThan(even[0] + even[1], 1.3, "both share one core: \(even)")
        XCTAssertEqual(even[0] / max(even[1], 0.01), 1, accuracy: 0.5, "equal shares split evenly: \(even)")

        let root = try temporaryDirectory(self)
        try LabCluster.writePolicy(root: root)
        let dir = try LabCluster.write(
            root: root, name: "shares", hosts: [("a", shared.uri("A"))],
            vms: [high, low].map { "{name: \($0), vcpus: 1, memory: 512MiB, placement: {host: a}, resources: {cpu: {shares: \($0 == high ? "high" : "low")}}}" },
            trace: [high, low].map { .init($0, cpu: 0.2, memMiB: 100, guestFreeMiB: 300) })

        let cluster = try ClusterLoader.load(dir.path)
        let connections = FleetConnections(cluster: cluster)
        defer { connections.closeAll() }
        let document = Engine.plan(cluster, snapshot: try Engine.observe(cluster, connections: connections, state: nil),
                                   state: nil)
        let shares = Dictionary(uniqueKeysWithValues: document.actions.filter { $0.kind == .tune }
            .compactMap { a in a.parameters.cpuShares.map { (a.vm, $0) } })
        XCTAssertEqual(shares, [high: 2000, low: 500], "\(document.actions.map(\.reason))")
        let report = try Applier(cluster: cluster, connections: connections, state: nil).apply(document)
        XCTAssertTrue(report.succeeded, "\(report.outcomes)")
        XCTAssertEqual(try shared.a.domain(named: high).cpuTune?.shares, 2000)
        XCTAssertEqual(try shared.a.domain(named: low).cpuTune?.shares, 500)

        let tuned = try cpuRates(shared.a, [high, low], seconds: 6)
        let ratio = tuned[0] / max(tuned[1], 0.01)
        print(String(format: "shares on one core: before %.2f/%.2f cores, after high %.2f / low %.2f = %.2f (shares 4.0)",
                     even[0], even[1], tuned[0], tuned[1], ratio))
        XCTAssertEqual(ratio, 4, accuracy: 1, "CPU time follows the 4:1 shares within 25%: \(tuned) (before \(even))")
    }

    /// A memory hard limit written at define time: libvirt raises QEMU's RLIMIT_MEMLOCK to it, which needs
    /// CAP_SYS_RESOURCE. Where the machine allows it the guest runs with the limit (read back through the API);
    /// where it does not, the start fails with a message that names the cause and the way out, and the define
    /// before it is journaled as done (state true to what happened).
    func testMemoryHardLimitAtDefineRunsOrIsRefusedWithTheCause() throws {
        if let reason = LinuxGuest.unavailableReason() { throw XCTSkip(reason) }
        let shared = try SharedQemuLab.get(.root)
        let vm = "rt-memlock"
        shared.removeGuests([vm])
        defer { shared.removeGuests([vm]) }
        let root = try temporaryDirectory(self)
        try LabCluster.writePolicy(root: root)
        let dir = try LabCluster.write(
            root: root, name: "memlock", hosts: [("a", shared.uri("A"))],
            vms: ["{name: \(vm), vcpus: 1, memory: 512MiB, template: templates/guest.xml, placement: {host: a}, resources: {memory: {limit: 600MiB}}}"],
            trace: [.init(vm)])
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("templates"), withIntermediateDirectories: true)
        try LinuxGuest.xml(name: "NAME", uuid: "00000000-0000-4000-8000-000000000000")
            .write(to: dir.appendingPathComponent("templates/guest.xml"), atomically: true, encoding: .utf8)
        let cluster = try ClusterLoader.load(dir.path)
        let connections = FleetConnections(cluster: cluster)
        defer { connections.closeAll() }
        let document = Engine.plan(cluster, snapshot: try Engine.observe(cluster, connections: connections, state: nil),
                                   state: nil)
        XCTAssertEqual(document.actions.map(\.kind), [.define, .start], "\(document.actions.map(\.reason))")
        let report = try Applier(cluster: cluster, connections: connections, state: nil).apply(document)
        let start = try XCTUnwrap(report.outcomes.first { $0.kind == .start })
        XCTAssertEqual(report.outcomes.first { $0.kind == .define }?.status, .done)
        if start.status == .done {
            XCTAssertEqual(try shared.a.domain(named: vm).memoryTune?.hardLimitMiB, 600)
            print("memory hard limit at define: the guest runs with hard_limit 600 MiB")
        } else {
            let detail = start.detail ?? ""
            XCTAssertTrue(detail.contains("CAP_SYS_RESOURCE") && detail.contains("resources.memory.limit"), detail)
            XCTAssertEqual(try shared.a.domain(named: vm).state, .shutoff, "defined, not running")
            print("memory hard limit at define refused: \(detail)")
        }
    }

    private func cpuRates(_ c: LibvirtConnection, _ names: [String], seconds: Double) throws -> [Double] {
        let s0 = try c.allDomainStats()
        Thread.sleep(forTimeInterval: seconds)
        let s1 = try c.allDomainStats()
        let rates = UtilizationCalculator.utilization(previous: s0, current: s1)
        return try names.map { n in try XCTUnwrap(rates.first { $0.name == n }?.cpuCores, n) }
    }

    private func cpuRate(_ c: LibvirtConnection, _ name: String, seconds: Double) throws -> Double {
        let s0 = try c.allDomainStats()
        Thread.sleep(forTimeInterval: seconds)
        let s1 = try c.allDomainStats()
        return try XCTUnwrap(UtilizationCalculator.utilization(previous: s0, current: s1).first { $0.name == name }?.cpuCores)
    }
}
