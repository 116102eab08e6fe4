import Foundation
import SandpiperModel
import XCTest
@testable import SandpiperPlanner

/// Plan quality against the exact optima of Tests/Data/quality/fleets.json (computed offline by
/// tools/quality/optimum.py with OR-Tools CP-SAT), and step 5b on hand-made fleets. Every plan is judged by
/// LoadOracle: the plan's migrations summed onto the observation from the raw samples, never the planner's
/// own hostsAfter.
final class QualityTests: XCTestCase {
    static func fleets() throws -> QualityFleetFile {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../Data/quality/fleets.json")
        return try JSONDecoder().decode(QualityFleetFile.self, from: Data(contentsOf: url))
    }

    struct Verdict { var resolved: Bool; var problems: [String] }

    /// Resolved: every host under every threshold after the plan. Problems: a capacity exceeded, a pin or a must
    /// anti-affinity rule broken, a VM lost.
    static func judge(_ plan: Plan, spec: ClusterSpec, observation: Observation, policy: Policy) -> Verdict {
        let oracle = LoadOracle(spec: spec, observation: observation, policy: policy)
        let at = oracle.placement(after: plan)
        var problems: [String] = []
        if at.count != observation.vms.count { problems.append("VMs lost: \(observation.vms.count - at.count)") }
        for s in spec.vms { if let pin = s.placement?.host, at[s.name] != pin { problems.append("\(s.name) left its pin") } }
        for g in spec.groups where g.rule == .antiAffinity && g.enforcement == .must {
            let hosts = g.vms.compactMap { at[$0] }
            if Set(hosts).count != hosts.count { problems.append("\(g.name) shares a host") }
        }
        var resolved = true
        for (host, state) in oracle.hosts(at) {
            guard let cap = oracle.capacity(host) else { problems.append("unknown host \(host)"); continue }
            let u = LoadOracle.utilization(state.load, cap)
            let t = oracle.hostThresholds(state.members)
            for r in ResourceKind.allCases {
                if u[r]! > 1 + 1e-9 { problems.append("\(host) \(r.rawValue) over capacity") }
                if u[r]! > t.value(r) + 1e-9 { resolved = false }
            }
        }
        return Verdict(resolved: resolved, problems: problems)
    }

    func testQualityFleetsResolvedNearTheMinimumAndValid() throws {
        let file = try Self.fleets()
        XCTAssertGreaterThanOrEqual(file.fleets.count, 20)
        var planned = 0, minimum = 0
        let budget = QualityBenchmark.defaultBudget
        for f in file.fleets {
            let feasible = try XCTUnwrap(f.feasible, "\(f.name): no solver verdict")
            for b in [nil, budget] as [Int?] {
                let (spec, observation, policy) = QualityBenchmark.inputs(f, budget: b)
                let plan = Planner.plan(spec: spec, observation: observation, policy: policy)
                XCTAssertEqual(plan, Planner.plan(spec: spec, observation: observation, policy: policy),
                               "\(f.name): not deterministic")
                let v = Self.judge(plan, spec: spec, observation: observation, policy: policy)
                XCTAssertEqual(v.problems, [], "\(f.name) budget \(b.map(String.init) ?? "none")")
                XCTAssertLessThanOrEqual(plan.moves.count, b ?? .max)
                guard feasible, let opt = f.optimum else {
                    XCTAssertFalse(v.resolved, "\(f.name): the solver found no placement, the oracle finds this one fine")
                    continue
                }
                if v.resolved {
                    XCTAssertGreaterThanOrEqual(plan.moves.count, opt, "\(f.name): fewer moves than the proven minimum")
                }
                if b == nil {
                    XCTAssertTrue(v.resolved, "\(f.name): feasible (minimum \(opt)) but not resolved")
                    planned += plan.moves.count; minimum += opt
                } else if opt <= budget {
                    XCTAssertTrue(v.resolved, "\(f.name): minimum \(opt) fits the budget \(budget), the plan does not")
                }
            }
        }
        XCTAssertGreaterThan(minimum, 0)
        XCTAssertLessThanOrEqual(Double(planned), 1.1 * Double(minimum), "\(planned) migrations vs minimum \(minimum)")
    }

    /// pm1 8 cores at 7.5 (threshold 6): a and b (1 core, 1 GiB each) have the highest VSR, so the greedy moves
    /// both; c (4.5 cores, 16 GiB) alone suffices.
    func world() -> World {
        var w = World(hosts: 3)
        w.addVM("a", on: "pm1", cpu: 1.0, memoryMiB: 1024, mem: 512)
        w.addVM("b", on: "pm1", cpu: 1.0, memoryMiB: 1024, mem: 512)
        w.addVM("c", on: "pm1", cpu: 4.5, memoryMiB: 16384, mem: 4096)
        w.addVM("d", on: "pm1", cpu: 1.0, memoryMiB: 1024, mem: 512)
        w.addVM("e", on: "pm2", cpu: 1.0)
        w.addVM("f", on: "pm3", cpu: 1.5)
        return w
    }

    func testUnneededGreedyMovesAreReplacedByFewer() {
        let w = world()
        let greedy = w.plan(PlanOptions(improve: false))
        XCTAssertEqual(greedy.moves.count, 2, "the greedy moves two high-VSR VMs")
        let plan = w.plan()
        XCTAssertEqual(plan.moves.map(\.vm), ["c"])
        let v = Self.judge(plan, spec: w.spec, observation: w.observation, policy: w.policy)
        XCTAssertTrue(v.resolved); XCTAssertEqual(v.problems, [])
        XCTAssertTrue(plan.moves[0].reason.contains("instead of the greedy's 2"), plan.moves[0].reason)
    }

    func testMinimumWithinTheBudgetIsFound() {
        var w = world()
        w.policy.placement.maxMigrationsPerRun = 1
        let greedy = w.plan(PlanOptions(improve: false))
        XCTAssertFalse(Self.judge(greedy, spec: w.spec, observation: w.observation, policy: w.policy).resolved)
        let plan = w.plan()
        XCTAssertEqual(plan.moves.map(\.vm), ["c"])
        XCTAssertTrue(Self.judge(plan, spec: w.spec, observation: w.observation, policy: w.policy).resolved)
        XCTAssertEqual(plan.unresolved, [])
    }

    func testPinnedAndResidentVMsStayPut() {
        var w = world()
        w.updateSpec("c") { $0.placement = PlacementRule(host: "pm1") }
        w.update("a") { $0.lastMovedAt = Fixture.now - 10 }
        let plan = w.plan()
        XCTAssertFalse(plan.moves.contains { $0.vm == "c" || $0.vm == "a" }, "\(plan.moves.map(\.vm))")
        let v = Self.judge(plan, spec: w.spec, observation: w.observation, policy: w.policy)
        XCTAssertTrue(v.resolved); XCTAssertEqual(v.problems, [])
        XCTAssertEqual(plan.moves.count, 2)
    }

    /// Step 5b only looks at small neighbourhoods: a 40-host fleet is planned exactly as by the greedy alone.
    func testLargeFleetsKeepTheGreedyPlan() {
        let (spec, observation, policy) = FleetGenerator.generate(hosts: 40, vms: 800, hotFraction: 0.2, seed: 5)
        let plan = Planner.plan(spec: spec, observation: observation, policy: policy)
        XCTAssertFalse(plan.moves.isEmpty)
        XCTAssertEqual(plan, Planner.plan(spec: spec, observation: observation, policy: policy,
                                          options: PlanOptions(improve: false)))
    }
}
