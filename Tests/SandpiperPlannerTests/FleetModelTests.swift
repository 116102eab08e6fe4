import XCTest
import SandpiperModel
@testable import SandpiperPlanner

/// Nova/DRS fleet model: allocation ratios, host reservations, declared capacity below observed, cordoned hosts
/// and per-VM automation. Allocations are judged by an oracle that replays the plan's moves on the world's own
/// placement and adds up declared vCPUs / memory (never the planner's hostsAfter).
final class FleetModelTests: XCTestCase {
    /// pm1 hot at 7/8 cores with a (4) and c (3); pm2 at 2 cores, pm3 at 1 core. Every VM: 8 vCPUs, 4 GiB.
    private func hotWorld() -> World {
        var w = World(hosts: 3)
        w.addVM("a", on: "pm1", cpu: 4)
        w.addVM("c", on: "pm1", cpu: 3)
        w.addVM("p", on: "pm2", cpu: 2)
        w.addVM("q", on: "pm3", cpu: 1)
        return w
    }

    /// Declared allocations per host after each move of `plan`, in order (the state before the first move first).
    private func allocationsAlong(_ plan: Plan, _ w: World) -> [[String: (vcpus: Double, mib: Double)]] {
        var at = Dictionary(uniqueKeysWithValues: w.vms.map { ($0.name, $0.host) })
        func totals() -> [String: (vcpus: Double, mib: Double)] {
            var t: [String: (vcpus: Double, mib: Double)] = [:]
            for s in w.spec.vms {
                guard let h = at[s.name] else { continue }
                t[h, default: (0, 0)].vcpus += Double(s.vcpus)
                t[h, default: (0, 0)].mib += s.memoryMiB
            }
            return t
        }
        var out = [totals()]
        for m in plan.moves {
            at[m.vm] = m.to
            out.append(totals())
        }
        return out
    }

    /// ConsolidationTests' world: pm1...pm3 power-managed, consolidation on (target 60%, low 30%, 30 min);
    /// pm3 (c, d) low for 40 minutes.
    private func consolidationWorld() -> World {
        var w = World(hosts: 3)
        for i in w.spec.hosts.indices { w.spec.hosts[i].power = HostPower(on: ["/bin/true"], off: ["/bin/true"]) }
        w.policy.consolidation = Policy.Consolidation(enabled: true, targetUtilization: 0.6, lowUtilization: 0.3,
                                                      minHostsOn: 1, powerOffAfterSeconds: 1800)
        return w
    }

    private func hostSpec(_ w: inout World, _ name: String, _ change: (inout HostSpec) -> Void) {
        change(&w.spec.hosts[w.spec.hosts.firstIndex { $0.name == name }!])
    }

    // MARK: allocation ratios and reservations

    func testCPUAllocationRatioMinusReservedRefusesAHostAndSaysWhy() throws {
        var w = hotWorld()
        w.policy.placement.swaps = false
        w.policy.allocationRatio = AllocationRatio(cpu: 2.0)
        hostSpec(&w, "pm3") { $0.capacity.reservedCPUs = 1 }  // 8 x 2.0 - 1 = 15 vCPUs; q holds 8, a needs 8
        let plan = w.plan()
        XCTAssertEqual(plan.moves.map { "\($0.vm):\($0.from!)->\($0.to!)" }, ["a:pm1->pm2"])
        let d = try XCTUnwrap(plan.decisions.first { $0.vm == "a" })
        XCTAssertTrue(d.filtered.contains(.init(reason: "cpu allocation", count: 1)), "\(d.filtered)")
        XCTAssertTrue(d.examples.contains(
            "pm3: needs 8 vCPUs; 8 of 15 vCPUs allocated (8 CPUs at ratio 2.0 minus 1 reserved)"), "\(d.examples)")
        for step in allocationsAlong(plan, w) { XCTAssertLessThanOrEqual(step["pm2"]?.vcpus ?? 0, 16) }

        // A host's own ratio overrides the policy's: pm2 at 1.0 holds one 8-vCPU VM. Nothing fits any more.
        hostSpec(&w, "pm2") { $0.allocationRatio = AllocationRatio(cpu: 1.0) }
        let refused = w.plan()
        XCTAssertTrue(refused.moves.isEmpty)
        let r = try XCTUnwrap(refused.decisions.first { $0.vm == "a" })
        XCTAssertTrue(r.examples.contains(
            "pm2: needs 8 vCPUs; 8 of 8 vCPUs allocated (8 CPUs at ratio 1.0 minus 0 reserved)"), "\(r.examples)")
        XCTAssertEqual(refused.unresolved.map(\.host), ["pm1"])

        // Without ratios the same world moves a to pm3 (lowest Volume): the limit, not the load, refused it.
        w.policy.allocationRatio = AllocationRatio()
        hostSpec(&w, "pm2") { $0.allocationRatio = nil }
        XCTAssertEqual(w.plan().moves.map { $0.to }, ["pm3"])
    }

    func testMemoryRatioAndReservedHostMemory() throws {
        var w = hotWorld()
        w.policy.placement.swaps = false
        w.policy.allocationRatio = AllocationRatio(memory: 1.0)
        // pm3 keeps 26 GiB for itself: 32768 x 1.0 - 26624 = 6144 MiB allocatable; q has 4096, a needs 4096.
        hostSpec(&w, "pm3") { $0.capacity.reservedMemoryMiB = 26624 }
        let plan = w.plan()
        XCTAssertEqual(plan.moves.map(\.to), ["pm2"])
        let d = try XCTUnwrap(plan.decisions.first { $0.vm == "a" })
        XCTAssertTrue(d.examples.contains(
            "pm3: needs 4096 MiB; 4096 of 6144 MiB memory allocated (32768 MiB at ratio 1.0 minus 26624 MiB reserved)"),
            "\(d.examples)")
        // The reserve also leaves the capacity demand is measured against: q's 1056 MiB of 6144 MiB.
        XCTAssertEqual(plan.host("pm3", after: false)?.mem ?? 0, 1056.0 / 6144, accuracy: 1e-9)
    }

    func testDeclaredCapacityBelowObservedWinsAboveItTheObservationDoes() {
        var w = World(hosts: 2)
        w.addVM("a", on: "pm1", cpu: 2)
        w.addVM("b", on: "pm2", cpu: 2)
        hostSpec(&w, "pm1") { $0.capacity.cpus = 4 }     // libvirt says 8: the operator keeps 4
        hostSpec(&w, "pm2") { $0.capacity.cpus = 16 }    // libvirt says 8: the observation is the ceiling
        let plan = w.plan()
        XCTAssertEqual(plan.host("pm1", after: false)?.cpu ?? 0, 2.0 / 4, accuracy: 1e-9)
        XCTAssertEqual(plan.host("pm2", after: false)?.cpu ?? 0, 2.0 / 8, accuracy: 1e-9)
        // With 2 reserved on top: 2 of (4 - 2).
        hostSpec(&w, "pm1") { $0.capacity.reservedCPUs = 2 }
        XCTAssertEqual(w.plan().host("pm1", after: false)?.cpu ?? 0, 1.0, accuracy: 1e-9)
    }

    func testStagedSwapNeverOvercommitsAnIntermediateState() {
        // As PlacementTests.testSwapThroughAStagingHost, with every host limited to 16 vCPUs (two VMs).
        var w = World(hosts: 3)
        w.addVM("a", on: "pm1", cpu: 4)
        w.addVM("c", on: "pm1", cpu: 3, placement: PlacementRule(host: "pm1"))
        w.addVM("b", on: "pm2", cpu: 2)
        w.addVM("d", on: "pm2", cpu: 2.5)
        w.addVM("e", on: "pm3", cpu: 3.2, placement: PlacementRule(host: "pm3"))
        w.policy.allocationRatio = AllocationRatio(cpu: 2.0)
        let plan = w.plan()
        XCTAssertEqual(plan.moves.count, 3, "\(plan.moves) \(plan.unresolved)")
        for (i, step) in allocationsAlong(plan, w).enumerated() {
            for (host, t) in step { XCTAssertLessThanOrEqual(t.vcpus, 16, "\(host) after move \(i)") }
        }
        // At 1.5 (12 vCPUs) no host can take a second VM: no swap, no move, and the reason is the allocation.
        w.policy.allocationRatio = AllocationRatio(cpu: 1.5)
        let refused = w.plan()
        XCTAssertTrue(refused.moves.isEmpty, "\(refused.moves)")
        XCTAssertTrue(refused.decisions.contains { $0.filtered.contains { $0.reason == "cpu allocation" } },
                      "\(refused.decisions)")
    }

    func testConsolidationPacksOnlyUnderTheAllocationLimit() {
        var w = consolidationWorld()
        w.addVM("a", on: "pm1", cpu: 2.5)
        w.addVM("b", on: "pm2", cpu: 2.0)
        w.addVM("c", on: "pm3", cpu: 0.5, memoryMiB: 2048)
        w.addVM("d", on: "pm3", cpu: 0.5, memoryMiB: 4096)
        w.hosts[2].lowSince = w.now - 40 * 60
        XCTAssertEqual(Set(w.plan().moves.compactMap(\.to)), ["pm1"], "without a ratio both go to pm1")
        w.policy.allocationRatio = AllocationRatio(cpu: 2.0)
        let plan = w.plan()
        XCTAssertEqual(plan.moves.count, 2)
        XCTAssertEqual(Set(plan.moves.compactMap(\.to)), ["pm1", "pm2"])
        for step in allocationsAlong(plan, w) { for (_, t) in step { XCTAssertLessThanOrEqual(t.vcpus, 16) } }
    }

    // MARK: cordon

    func testCordonedHostKeepsItsVMsAndReceivesNone() throws {
        var w = hotWorld()
        hostSpec(&w, "pm3") { $0.schedulable = false }
        let plan = w.plan()
        XCTAssertEqual(plan.moves.map { "\($0.vm):\($0.from!)->\($0.to!)" }, ["a:pm1->pm2"])
        let d = try XCTUnwrap(plan.decisions.first { $0.vm == "a" })
        XCTAssertTrue(d.filtered.contains(.init(reason: "unschedulable", count: 1)), "\(d.filtered)")
        XCTAssertFalse(plan.moves.contains { $0.vm == "q" }, "q stays on its cordoned host")

        // Unlike maintenance, which evacuates.
        var m = hotWorld()
        hostSpec(&m, "pm3") { $0.maintenance = true }
        XCTAssertTrue(m.plan().moves.contains { $0.vm == "q" && $0.from == "pm3" })

        // A pinned VM off its pin is not repaired onto a cordoned pin; an absent VM is not placed there.
        var p = World(hosts: 2)
        p.addVM("x", on: "pm1", cpu: 1, placement: PlacementRule(host: "pm2"))
        p.spec.vms.append(Fixture.vmSpec("new", vcpus: 2, memoryMiB: 1024))
        hostSpec(&p, "pm2") { $0.schedulable = false }
        let pinned = p.plan()
        XCTAssertTrue(pinned.moves.isEmpty, "\(pinned.moves)")
        XCTAssertEqual(pinned.actions.first { $0.kind == .define }?.to ?? pinned.actions.first { $0.kind == .define }?.host,
                       "pm1")
        XCTAssertTrue(pinned.unresolved.contains { $0.vm == "x" && $0.reason.contains("cordoned") }, "\(pinned.unresolved)")
    }

    func testCordonedHostIsNeitherConsolidationTargetNorEmptied() {
        var w = consolidationWorld()
        w.addVM("a", on: "pm1", cpu: 2.5)
        w.addVM("b", on: "pm2", cpu: 2.0)
        w.addVM("c", on: "pm3", cpu: 0.5, memoryMiB: 2048)
        w.addVM("d", on: "pm3", cpu: 0.5, memoryMiB: 4096)
        w.hosts[2].lowSince = w.now - 40 * 60
        hostSpec(&w, "pm1") { $0.schedulable = false }
        let plan = w.plan()
        XCTAssertFalse(plan.moves.isEmpty)
        XCTAssertFalse(plan.moves.contains { $0.to == "pm1" }, "\(plan.moves)")
        hostSpec(&w, "pm1") { $0.schedulable = true }
        hostSpec(&w, "pm3") { $0.schedulable = false }
        XCTAssertTrue(w.plan().actions.isEmpty, "a cordoned host keeps its VMs: \(w.plan().actions)")
    }

    // MARK: per-VM automation

    func testDisabledVMIsNeverMovedNorRetuned() {
        var w = hotWorld()
        w.updateSpec("a") { $0.automation = .disabled }
        w.updateSpec("c") { $0.automation = .disabled }
        let plan = w.plan()
        XCTAssertTrue(plan.moves.isEmpty, "\(plan.moves)")
        XCTAssertTrue(plan.unresolved.contains { $0.reason.contains("automation disabled") }, "\(plan.unresolved)")
        // Out of its shares: a tune the planner would otherwise plan for it.
        w.update("a") { $0.tunables.cpuShares = 5 }
        XCTAssertFalse(w.plan().actions.contains { $0.vm == "a" })
        w.updateSpec("a") { $0.automation = .full }
        XCTAssertTrue(w.plan().actions.contains { $0.vm == "a" && $0.kind == .tune })
    }
}

/// Load outside the VMs (`HostObservation.overhead`): counted in utilization and detection, staying on its host.
final class HostOverheadTests: XCTestCase {
    func testHostOwnLoadMakesAHostHotAndStaysWhenVMsMove() throws {
        var w = World(hosts: 3)
        w.addVM("a", on: "pm1", cpu: 4)
        w.addVM("p", on: "pm2", cpu: 1)
        XCTAssertTrue(w.plan().hotspots.isEmpty, "4 of 8 cores: not hot without the host's own load")
        // pm1's hypervisor uses 2.5 cores, pm2's 3: pm1 at (4 + 2.5) / 8 = 81% > 75%.
        w.hosts[0].overhead = Fixture.samples(cpu: [2.5, 2.5, 2.5, 2.5, 2.5], mem: 2048)
        w.hosts[1].overhead = Fixture.samples(cpu: [3, 3, 3, 3, 3], mem: 0)
        let plan = w.plan()
        XCTAssertEqual(plan.hotspots.map(\.host), ["pm1"])
        XCTAssertEqual(plan.host("pm1", after: false)?.cpu ?? 0, 6.5 / 8, accuracy: 1e-9)
        XCTAssertEqual(plan.host("pm1", after: false)?.mem ?? 0, (2048 + 1024 + 32) / 32768, accuracy: 1e-9)
        // a (4 cores) does not fit on pm2 (3 + 1 + 4 > 6), it does on pm3; pm1 keeps its own 2.5 cores.
        XCTAssertEqual(plan.moves.map { "\($0.vm):\($0.from!)->\($0.to!)" }, ["a:pm1->pm3"])
        XCTAssertEqual(plan.host("pm1")?.cpu ?? 0, 2.5 / 8, accuracy: 1e-9)
        XCTAssertEqual(plan.host("pm3")?.cpu ?? 0, 4.0 / 8, accuracy: 1e-9)
    }
}
