import SandpiperModel
@testable import SandpiperPlanner
import XCTest

/// Balancing under the thresholds (`balance:`). Spread, thresholds and placements are recomputed here from the
/// observation and the plan's moves (LoadOracle), never read from the planner's hostsAfter.
final class BalanceTests: XCTestCase {
    /// Dominant resource (highest mean utilization over `hosts`) and per-host utilization of it, from the oracle.
    static func spread(_ oracle: LoadOracle, _ placement: [String: String], hosts: [String]) -> (spread: Double, variance: Double, resource: ResourceKind) {
        let states = oracle.hosts(placement)
        let utils = hosts.map { h in LoadOracle.utilization(states[h]?.load ?? LoadOracle.Load(), oracle.capacity(h)!) }
        var dominant = ResourceKind.cpu, best = -1.0
        for r in ResourceKind.allCases {
            let mean = utils.reduce(0.0) { $0 + $1[r]! } / Double(utils.count)
            if mean > best + 1e-12 { best = mean; dominant = r }
        }
        let values = utils.map { $0[dominant]! }
        let mean = values.reduce(0, +) / Double(values.count)
        let variance = values.reduce(0.0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count)
        return (values.max()! - values.min()!, variance, dominant)
    }

    /// Every resource of every host within its members' strictest thresholds.
    static func overThreshold(_ oracle: LoadOracle, _ placement: [String: String]) -> [String] {
        var out: [String] = []
        for (host, s) in oracle.hosts(placement) {
            let u = LoadOracle.utilization(s.load, oracle.capacity(host)!)
            let t = oracle.hostThresholds(s.members)
            for r in ResourceKind.allCases where u[r]! > t[r] + 1e-9 { out.append("\(host) \(r.rawValue)") }
        }
        return out.sorted()
    }

    /// Random fleets under the thresholds with uneven load: balance never crosses a threshold, never widens the
    /// spread, lowers the variance with every plan that moves, and moves nothing when it is off.
    func testBalanceNarrowsTheSpreadWithoutCrossingThresholds() {
        var rng = SplitMix(seed: 4)
        var movedPlans = 0
        for _ in 0..<60 {
            let n = rng.next(in: 3...6)
            var w = World(hosts: n)
            w.policy.balance = Policy.Balance(enabled: true, maxSpread: 0.1, maxMoves: 3)
            for h in 1...n {
                // Host k carries k x base: uneven, but every host below 75% CPU.
                let count = rng.next(in: 1...4)
                for i in 0..<count {
                    let cpu = Double(rng.next(in: 1...Int(10 * 5.5 / Double(count) * Double(h) / Double(n)) + 1)) / 10
                    w.addVM("v\(h)-\(i)", on: "pm\(h)", cpu: cpu, vcpus: 8, memoryMiB: 2048, mem: 1024)
                }
            }
            let oracle = LoadOracle(spec: w.spec, observation: w.observation, policy: w.policy)
            let before = oracle.observedPlacement
            guard Self.overThreshold(oracle, before).isEmpty else { continue }
            let hosts = w.hosts.map(\.name)
            let plan = w.plan()
            XCTAssertTrue(plan.hotspots.isEmpty)
            let after = oracle.placement(after: plan)
            XCTAssertEqual(Self.overThreshold(oracle, after), [], "\(plan.moves.map(\.reason))")
            let s0 = Self.spread(oracle, before, hosts: hosts), s1 = Self.spread(oracle, after, hosts: hosts)
            XCTAssertLessThanOrEqual(s1.spread, s0.spread + 1e-9)
            XCTAssertLessThanOrEqual(plan.moves.count, 3)
            for m in plan.moves { XCTAssertTrue(m.reason.hasPrefix("balance: "), m.reason) }
            if !plan.moves.isEmpty {
                movedPlans += 1
                XCTAssertGreaterThan(s0.spread, 0.1, "balance only moves above maxSpread")
                XCTAssertLessThan(s1.variance, s0.variance - 1e-12)
            }
            var off = w
            off.policy.balance.enabled = false
            XCTAssertTrue(off.plan().moves.isEmpty, "balance off: a calm fleet is left alone")
        }
        XCTAssertGreaterThan(movedPlans, 10, "the property saw balancing")
    }

    /// Rounds of plan -> apply (moves summed onto the observation here) on constant load, with the clock moving
    /// past minResidency every round so residency alone cannot hold a VM: no VM ever returns to a host it left,
    /// the spread never widens, and the loop settles (a round without moves).
    func testBalanceNeverMovesAVMBackOverRounds() {
        var rng = SplitMix(seed: 9)
        var settled = 0
        for _ in 0..<20 {
            var w = World(hosts: 4)
            w.policy.balance = Policy.Balance(enabled: true, maxSpread: 0.05, maxMoves: 2)
            for h in 1...4 {
                for i in 0..<(h + 1) {
                    w.addVM("v\(h)-\(i)", on: "pm\(h)", cpu: Double(rng.next(in: 2...11)) / 10 * Double(h) / 2,
                            vcpus: 4, memoryMiB: 2048, mem: 512)
                }
            }
            let oracle0 = LoadOracle(spec: w.spec, observation: w.observation, policy: w.policy)
            guard Self.overThreshold(oracle0, oracle0.observedPlacement).isEmpty else { continue }
            var left: [String: Set<String>] = [:]
            var lastSpread = Self.spread(oracle0, oracle0.observedPlacement, hosts: w.hosts.map(\.name)).spread
            for round in 0..<8 {
                let plan = w.plan()
                if plan.moves.isEmpty { settled += 1; break }
                for m in plan.moves {
                    XCTAssertFalse(left[m.vm, default: []].contains(m.to!), "round \(round): \(m.vm) back to \(m.to!)")
                    left[m.vm, default: []].insert(m.from!)
                    let now = w.now
                    w.update(m.vm) { $0.host = m.to!; $0.lastMovedAt = now }
                }
                w.now += 600
                let oracle = LoadOracle(spec: w.spec, observation: w.observation, policy: w.policy)
                XCTAssertEqual(Self.overThreshold(oracle, oracle.observedPlacement), [])
                let s = Self.spread(oracle, oracle.observedPlacement, hosts: w.hosts.map(\.name)).spread
                XCTAssertLessThanOrEqual(s, lastSpread + 1e-9, "round \(round)")
                lastSpread = s
            }
        }
        XCTAssertGreaterThan(settled, 10)
    }

    /// Within minResidency a VM balance moved is held: in the next round (60 s later) it does not move.
    func testAVMMovedByBalanceIsHeldForMinResidency() {
        var w = World(hosts: 3)
        w.policy.balance = Policy.Balance(enabled: true, maxSpread: 0.02, maxMoves: 1)
        for i in 0..<4 { w.addVM("a\(i)", on: "pm1", cpu: 1.4, vcpus: 4, memoryMiB: 2048) }
        w.addVM("b0", on: "pm2", cpu: 1.0, vcpus: 4, memoryMiB: 2048)
        var moved: Set<String> = []
        for _ in 0..<4 {
            let plan = w.plan()
            for m in plan.moves {
                XCTAssertFalse(moved.contains(m.vm), "\(m.vm) moved again within minResidency")
                moved.insert(m.vm)
                let now = w.now
                    w.update(m.vm) { $0.host = m.to!; $0.lastMovedAt = now }
            }
            w.now += 60
        }
        XCTAssertGreaterThanOrEqual(moved.count, 2, "balance moved one VM per round")
    }

    /// With consolidation on, a power-managed low host (a candidate for evacuation) is never a balance target;
    /// with consolidation off the same fleet balances onto it (so the test can fail).
    func testConsolidationCandidatesAreNeverBalanceTargets() {
        var w = World(hosts: 3)
        for i in w.spec.hosts.indices { w.spec.hosts[i].power = HostPower(on: ["/bin/true"], off: ["/bin/true"]) }
        w.policy.balance = Policy.Balance(enabled: true, maxSpread: 0.1, maxMoves: 2)
        w.policy.consolidation = Policy.Consolidation(enabled: true, targetUtilization: 0.6, wakeAhead: false)
        for i in 0..<4 { w.addVM("a\(i)", on: "pm1", cpu: 1.3, vcpus: 4, memoryMiB: 2048) }
        for i in 0..<3 { w.addVM("b\(i)", on: "pm2", cpu: 1.2, vcpus: 4, memoryMiB: 2048) }
        w.addVM("c0", on: "pm3", cpu: 1.0, vcpus: 4, memoryMiB: 2048)
        let plan = w.plan()
        XCTAssertFalse(plan.moves.isEmpty, "pm1 65% vs pm2 45%: balance moves")
        XCTAssertFalse(plan.moves.contains { $0.to == "pm3" }, "\(plan.moves.map(\.reason))")
        var off = w
        off.policy.consolidation.enabled = false
        XCTAssertTrue(off.plan().moves.contains { $0.to == "pm3" })
    }

    /// A consolidation plan (a host emptied and powered off) does not balance in the same plan.
    func testNoBalanceInAConsolidationPlan() {
        var w = World(hosts: 3)
        for i in w.spec.hosts.indices { w.spec.hosts[i].power = HostPower(on: ["/bin/true"], off: ["/bin/true"]) }
        w.policy.balance = Policy.Balance(enabled: true, maxSpread: 0.05, maxMoves: 4)
        w.policy.consolidation = Policy.Consolidation(enabled: true, targetUtilization: 0.6, wakeAhead: false)
        w.addVM("a0", on: "pm1", cpu: 3.0, vcpus: 4, memoryMiB: 2048)
        w.addVM("b0", on: "pm2", cpu: 1.0, vcpus: 4, memoryMiB: 2048)
        w.addVM("c0", on: "pm3", cpu: 0.4, vcpus: 4, memoryMiB: 2048)
        for i in w.hosts.indices { w.hosts[i].lowSince = w.now - 7200 }
        let plan = w.plan()
        XCTAssertTrue(plan.actions.contains { $0.kind == .powerOff }, "\(plan.actions.map(\.reason))")
        XCTAssertFalse(plan.moves.contains { $0.reason.hasPrefix("balance") })
    }

    /// Cost-benefit applies to balance moves: at level 1 a VM with a large local disk is not moved for balance,
    /// and the plan's decisions say why.
    func testBalanceMovesPassCostBenefit() {
        var w = World(hosts: 2)
        w.policy.balance = Policy.Balance(enabled: true, maxSpread: 0.1, maxMoves: 2)
        w.policy.placement.migrationThreshold = 1
        w.addVM("a0", on: "pm1", cpu: 2.5, vcpus: 4, memoryMiB: 2048)
        w.addVM("a1", on: "pm1", cpu: 2.5, vcpus: 4, memoryMiB: 2048)
        w.update("a0") { $0.diskCopyBytes = 200 * 1_073_741_824 }
        w.update("a1") { $0.diskCopyBytes = 200 * 1_073_741_824 }
        let plan = w.plan()
        XCTAssertTrue(plan.moves.isEmpty)
        let note = plan.decisions.first { $0.purpose == .balance }
        XCTAssertEqual(note?.filtered.first?.reason, "cost-benefit")
        XCTAssertTrue(note?.examples.first?.contains("cost exceeds benefit at migrationThreshold 1") ?? false, "\(String(describing: note))")
        var aggressive = w
        aggressive.policy.placement.migrationThreshold = 5
        XCTAssertEqual(aggressive.plan().moves.count, 1)
    }
}
