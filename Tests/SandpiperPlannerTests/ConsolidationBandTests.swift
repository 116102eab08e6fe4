import XCTest
import SandpiperModel
@testable import SandpiperPlanner

/// The DPM criterion: a host is a power-off candidate below the target band's low edge (targetUtilization -
/// targetBand) when its VMs fit the other hosts under the target; `lowUtilization` overrides; `should` rules hold.
/// Judged by LoadOracle: loads recomputed from the observation and the plan's moves, none of the planner's code.
final class ConsolidationBandTests: XCTestCase {
    /// pm1...pmN power-managed, consolidation with only the documented keys (no lowUtilization: band 18%).
    func world(hosts n: Int) -> World {
        var w = World(hosts: n)
        for i in w.spec.hosts.indices { w.spec.hosts[i].power = ConsolidationTests.power }
        w.policy.consolidation = Policy.Consolidation(enabled: true, targetUtilization: 0.6, minHostsOn: 1,
                                                      powerOffAfterSeconds: 1800)
        return w
    }

    /// Every host low for an hour (as the engine records it when `isLow` holds).
    func allLow(_ w: inout World) {
        for i in w.hosts.indices { w.hosts[i].lowSince = w.now - 3600 }
    }

    /// Per host, utilization (load / capacity) recomputed from the observation and the plan.
    func utilization(_ w: World, _ plan: Plan?) -> [String: [ResourceKind: Double]] {
        let oracle = LoadOracle(spec: w.spec, observation: w.observation, policy: w.policy)
        let placement = plan.map { oracle.placement(after: $0) }
            ?? Dictionary(uniqueKeysWithValues: w.vms.map { ($0.name, $0.host) })
        let states = oracle.hosts(placement)
        var out: [String: [ResourceKind: Double]] = [:]
        for h in w.hosts {
            out[h.name] = LoadOracle.utilization(states[h.name]?.load ?? LoadOracle.Load(), oracle.capacity(h.name)!)
        }
        return out
    }

    /// Memory near 35% on every host, CPU low: two VMs of ~17.5% memory per host.
    func memoryBound(hosts n: Int, memPerVM: Double = 5800) -> World {
        var w = world(hosts: n)
        for h in 1...n {
            w.addVM("a\(h)", on: "pm\(h)", cpu: 0.4, memoryMiB: 8192, mem: memPerVM)
            w.addVM("b\(h)", on: "pm\(h)", cpu: 0.7 - 0.1 * Double(h), memoryMiB: 8192, mem: memPerVM)
        }
        allLow(&w)
        return w
    }

    func testMemoryBoundHostIsEmptiedWhenItsVMsFitTheOthersUnderTheTarget() throws {
        let w = memoryBound(hosts: 3)
        let before = utilization(w, nil)
        for (h, u) in before {
            XCTAssertGreaterThanOrEqual(u[.mem]!, 0.35, "\(h): the old criterion (under 35%) never calls it low")
            XCTAssertLessThan(u[.mem]!, 0.42, "\(h): under the band's low edge 60% - 18%")
            XCTAssertTrue(w.policy.consolidation.isLow(cpu: u[.cpu]!, net: u[.net]!, mem: u[.mem]!), h)
        }
        let plan = w.plan()
        let off = plan.actions.filter { $0.kind == .powerOff }.compactMap(\.host)
        // Two hosts at ~35% hold a third host's ~35% under 60%; one host cannot hold all three (~105%).
        XCTAssertEqual(off.count, 1, "\(plan.actions.map(\.reason))")
        let after = utilization(w, plan)
        let placement = LoadOracle(spec: w.spec, observation: w.observation, policy: w.policy).placement(after: plan)
        XCTAssertFalse(placement.values.contains(off[0]), "\(off[0]) powered off with VMs")
        for m in plan.moves {
            XCTAssertEqual(m.from, off[0])
            for r in ResourceKind.allCases {
                XCTAssertLessThanOrEqual(after[m.to!]![r]!, 0.6 + 1e-9, "\(m.to!) \(r) above the target")
            }
        }
        let reason = try XCTUnwrap(plan.actions.first { $0.kind == .powerOff }).reason
        XCTAssertTrue(reason.contains("below the target band's low edge 42.0% (60.0% - 18.0%)"), reason)

        // lowUtilization, when set, overrides the band: under 35% no host is low, so nothing is planned.
        var old = w
        old.policy.consolidation.lowUtilization = 0.35
        XCTAssertTrue(before.values.allSatisfy { !old.policy.consolidation.isLow(cpu: $0[.cpu]!, net: $0[.net]!, mem: $0[.mem]!) })
    }

    func testMemoryBoundHostIsKeptWhenItsVMsDoNotFitUnderTheTarget() {
        // Two hosts near 40% memory: either one emptied would put the other near 80%, above the 60% target.
        let w = memoryBound(hosts: 2, memPerVM: 6400)
        let before = utilization(w, nil)
        XCTAssertGreaterThan(before["pm1"]![.mem]! + before["pm2"]![.mem]!, 0.6, "the fixture does not fit")
        XCTAssertTrue(before.values.allSatisfy { $0[.mem]! < 0.42 }, "both are below the band")
        let plan = w.plan()
        XCTAssertTrue(plan.actions.isEmpty, "\(plan.actions.map(\.reason))")
    }

    func testShouldAntiAffinityIsRespectedWhenPacking() throws {
        // pm3 is the lowest; its VMs would go to the most loaded host, pm1 (CPU), without the rule.
        var w = memoryBound(hosts: 3)
        let free = w.plan()
        XCTAssertTrue(free.moves.contains { $0.vm == "a3" && $0.to == "pm1" }, "\(free.moves.map { ($0.vm, $0.to) })")

        w.spec.groups = [GroupSpec(name: "spread", vms: ["a3", "a1"], rule: .antiAffinity, enforcement: .should)]
        let plan = w.plan()
        XCTAssertFalse(plan.moves.isEmpty)
        let placement = LoadOracle(spec: w.spec, observation: w.observation, policy: w.policy).placement(after: plan)
        XCTAssertNotEqual(placement["a3"], placement["a1"], "should anti-affinity broken by consolidation")
        let after = utilization(w, plan)
        for m in plan.moves {
            for r in ResourceKind.allCases { XCTAssertLessThanOrEqual(after[m.to!]![r]!, 0.6 + 1e-9) }
        }

        // Every receiver holds a partner of a3: pm3 is not emptied (the rule is kept, the host stays on), while
        // another host may still be.
        w.spec.groups = [GroupSpec(name: "spread", vms: ["a3", "a1", "a2"], rule: .antiAffinity, enforcement: .should)]
        let kept = w.plan()
        let keptPlacement = LoadOracle(spec: w.spec, observation: w.observation, policy: w.policy).placement(after: kept)
        let members = ["a1", "a2", "a3"].compactMap { keptPlacement[$0] }
        XCTAssertEqual(Set(members).count, 3, "\(kept.moves.map { ($0.vm, $0.to) })")
        XCTAssertFalse(kept.moves.contains { $0.vm == "a3" })
    }
}
