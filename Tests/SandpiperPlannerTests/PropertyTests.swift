import Foundation
import XCTest
import SandpiperModel
@testable import SandpiperPlanner

/// Seeded generated fleets: invariants every plan must keep.
final class PropertyTests: XCTestCase {
    static let cases: [(hosts: Int, vms: Int, seed: UInt64)] = [
        (4, 40, 1), (8, 120, 2), (20, 300, 3), (50, 1000, 4), (100, 2500, 5), (200, 4000, 6), (30, 900, 7),
    ]

    /// Final placement: observation with the plan's migrations, definitions and undefinitions applied in order.
    private func placement(_ obs: Observation, _ plan: Plan) -> [String: String] {
        var at: [String: String] = [:]
        for v in obs.vms { at[v.name] = v.host }
        for a in plan.actions {
            switch a.kind {
            case .migrate:
                XCTAssertEqual(at[a.vm], a.from, "\(a.vm) migrates from where it is")
                at[a.vm] = a.to
            case .define: at[a.vm] = a.to
            case .undefine: at[a.vm] = nil
            default: break
            }
        }
        return at
    }

    func check(_ spec: ClusterSpec, _ obs: Observation, _ policy: Policy, label: String,
               options: PlanOptions = PlanOptions()) throws {
        let plan = Planner.plan(spec: spec, observation: obs, policy: policy, options: options)
        let at = placement(obs, plan)
        let specByName = Dictionary(uniqueKeysWithValues: spec.vms.map { ($0.name, $0) })
        // Load is judged by LoadOracle from the raw samples and the plan's actions, never by the plan's own
        // hostsBefore/hostsAfter bookkeeping (only *which* hosts detection confirmed hot is taken from the plan).
        let oracle = LoadOracle(spec: spec, observation: obs, policy: policy)
        let before = oracle.hosts(oracle.observedPlacement), after = oracle.hosts(at)
        func utilization(_ host: String, _ side: [String: LoadOracle.HostState]) throws -> [ResourceKind: Double] {
            LoadOracle.utilization(side[host]?.load ?? .init(), try XCTUnwrap(oracle.capacity(host), "\(label): \(host)"))
        }
        func thresholds(_ host: String, _ side: [String: LoadOracle.HostState]) -> ResolvedThresholds {
            oracle.hostThresholds(side[host]?.members ?? [])
        }
        let unresolvedHosts = Set(plan.unresolved.compactMap { $0.vm == nil ? $0.host : nil })

        // The utilization the plan reports is the load of the profiles, before and after.
        for (column, reported, side) in [("before", plan.hostsBefore, before), ("after", plan.hostsAfter, after)] {
            for h in reported where h.status != .unknown {
                let u = try utilization(h.name, side)
                for r in ResourceKind.allCases {
                    XCTAssertEqual(h.utilization(r), u[r]!, accuracy: 1e-9, "\(label): \(h.name) \(r) reported \(column)")
                }
            }
        }
        // Hosts detection confirmed hot are fixed for their hot resources, or listed as unresolved.
        for h in plan.hostsBefore where !h.hot.isEmpty {
            let u = try utilization(h.name, after), t = thresholds(h.name, after)
            let stillHot = h.hot.filter { u[$0]! > t.value($0) + 1e-9 }
            if !unresolvedHosts.contains(h.name) {
                XCTAssertEqual(stillHot, [], "\(label): \(h.name) claimed fixed")
            }
        }
        // No new hotspot: every resource of a host that receives a VM and was under its threshold stays under
        // the threshold of the host's final members.
        let receivers = Set(plan.actions.compactMap { $0.kind == .migrate || $0.kind == .define ? $0.to : nil })
        for name in receivers {
            let ub = try utilization(name, before), tb = thresholds(name, before)
            let ua = try utilization(name, after), ta = thresholds(name, after)
            for r in ResourceKind.allCases where ub[r]! <= tb.value(r) + 1e-9 {
                XCTAssertLessThanOrEqual(ua[r]!, ta.value(r) + 1e-9, "\(label): \(name) \(r) new hotspot")
            }
        }
        // Reservations never oversubscribed on hosts that received VMs.
        for name in receivers {
            let c = try XCTUnwrap(oracle.capacity(name)), a = after[name] ?? .init()
            XCTAssertLessThanOrEqual(a.cpuReserved, c.cpu + 1e-9, "\(label): \(name) cpu reservations")
            XCTAssertLessThanOrEqual(a.memReserved, c.mem + 1e-9, "\(label): \(name) mem reservations")
        }
        // Must rules hold after the plan.
        for g in spec.groups where g.enforcement == .must {
            let hosts = g.vms.compactMap { at[$0] }
            switch g.rule {
            case .antiAffinity: XCTAssertEqual(Set(hosts).count, hosts.count, "\(label): \(g.name) anti-affinity")
            case .affinity: XCTAssertLessThanOrEqual(Set(hosts).count, 1, "\(label): \(g.name) affinity")
            }
        }
        // Pinned VMs only ever move onto their pin; migration: never VMs never move.
        let never = Set(spec.slas.filter { $0.migration == .never }.map(\.name))
        for a in plan.actions where a.kind == .migrate {
            let s = try XCTUnwrap(specByName[a.vm], "\(label): only declared VMs move")
            if let pin = s.placement?.host { XCTAssertEqual(a.to, pin, "\(label): \(a.vm) pinned") }
            XCTAssertFalse(s.sla.map(never.contains) ?? false, "\(label): \(a.vm) migration never")
        }
        // Budget.
        XCTAssertLessThanOrEqual(plan.migrations.count, policy.placement.maxMigrationsPerRun)
        // Dependencies point backwards.
        var seen = Set<String>()
        for a in plan.actions {
            for d in a.dependsOn { XCTAssertTrue(seen.contains(d), "\(label): \(a.id) depends on later \(d)") }
            seen.insert(a.id)
        }
        // Deterministic, and independent of input order.
        let bytes = try PlanDocument(plan: plan).encoded()
        XCTAssertEqual(bytes, try PlanDocument(plan: Planner.plan(spec: spec, observation: obs, policy: policy,
                                                                  options: options)).encoded(), "\(label): repeat")
        var shuffled = spec
        shuffled.vms.reverse(); shuffled.hosts.reverse(); shuffled.groups.reverse()
        var shuffledObs = obs
        shuffledObs.vms.reverse(); shuffledObs.hosts.reverse()
        XCTAssertEqual(bytes, try PlanDocument(plan: Planner.plan(spec: shuffled, observation: shuffledObs,
                                                                  policy: policy, options: options)).encoded(),
                       "\(label): input order")
    }

    func testGeneratedFleets() throws {
        var sawMoves = false
        for c in Self.cases {
            let (spec, obs, policy) = FleetGenerator.generate(hosts: c.hosts, vms: c.vms, hotFraction: 0.15, seed: c.seed)
            try check(spec, obs, policy, label: "\(c.hosts)x\(c.vms)#\(c.seed)")
            sawMoves = sawMoves || !Planner.plan(spec: spec, observation: obs, policy: policy).migrations.isEmpty
        }
        XCTAssertTrue(sawMoves)
    }

    /// Heavily loaded fleets: single moves run out, swaps (and their staging) carry the load.
    func testOverloadedFleetsExerciseSwaps() throws {
        var swaps = 0
        for seed in UInt64(2)...4 {
            var (spec, obs, policy) = FleetGenerator.generate(hosts: 40, vms: 1000, hotFraction: 0.6, seed: seed)
            policy.placement.maxMigrationsPerRun = 1000
            try check(spec, obs, policy, label: "overloaded \(seed)")
            let plan = Planner.plan(spec: spec, observation: obs, policy: policy)
            swaps += Set(plan.actions.compactMap(\.swapGroup)).count
            for a in plan.actions where a.swapGroup != nil { XCTAssertEqual(a.kind, .migrate) }
        }
        XCTAssertGreaterThan(swaps, 0)
    }

    /// Memory as the binding resource: a low memory threshold makes hosts memory-hot, so every fit check on
    /// memory is exercised (the generated fleets are otherwise CPU-bound).
    func testMemoryBoundFleets() throws {
        var moves = 0, memoryHot = 0
        for c in Self.cases.prefix(5) {
            let (spec, obs, basePolicy) = FleetGenerator.generate(hosts: c.hosts, vms: c.vms, seed: c.seed + 200)
            var policy = basePolicy
            policy.thresholds.mem = 0.33
            policy.placement.maxMigrationsPerRun = 1000
            try check(spec, obs, policy, label: "memory \(c.seed)")
            let plan = Planner.plan(spec: spec, observation: obs, policy: policy)
            moves += plan.migrations.count
            memoryHot += plan.hostsBefore.filter { $0.hot.contains(.mem) }.count
        }
        XCTAssertGreaterThan(memoryHot, 0)
        XCTAssertGreaterThan(moves, 0)
    }

    func testTightBudgetsAndSwapsOff() throws {
        for c in Self.cases.prefix(5) {
            var (spec, obs, policy) = FleetGenerator.generate(hosts: c.hosts, vms: c.vms, hotFraction: 0.3, seed: c.seed + 100)
            policy.placement.maxMigrationsPerRun = 3
            try check(spec, obs, policy, label: "budget \(c.seed)")
            policy.placement.swaps = false
            policy.placement.maxMigrationsPerRun = 1000
            try check(spec, obs, policy, label: "noswap \(c.seed)")
            // Maintenance on the first host: evacuation must respect everything too.
            spec.hosts[0].maintenance = true
            try check(spec, obs, policy, label: "maintenance \(c.seed)")
        }
    }

    func testDriftAndPrune() throws {
        var o = FleetGenerator.Options()
        o.absentFraction = 0.05
        o.undeclaredFraction = 0.05
        o.hotFraction = 0.2
        for seed in UInt64(10)..<14 {
            let (spec, obs, policy) = FleetGenerator.generate(hosts: 20, vms: 400, seed: seed, options: o)
            try check(spec, obs, policy, label: "drift \(seed)", options: PlanOptions(prune: true))
            let plan = Planner.plan(spec: spec, observation: obs, policy: policy, options: PlanOptions(prune: true))
            XCTAssertFalse(plan.actions.filter { $0.kind == .define }.isEmpty)
            XCTAssertFalse(plan.actions.filter { $0.kind == .undefine }.isEmpty)
        }
    }

    func testGeneratorIsSeeded() {
        let a = FleetGenerator.generate(hosts: 10, vms: 100, seed: 42)
        let b = FleetGenerator.generate(hosts: 10, vms: 100, seed: 42)
        let c = FleetGenerator.generate(hosts: 10, vms: 100, seed: 43)
        XCTAssertEqual(a.observation, b.observation)
        XCTAssertEqual(a.spec, b.spec)
        XCTAssertNotEqual(a.observation, c.observation)
    }
}

/// `SANDPIPER_BENCH=1 swift test -c release --filter PlannerBenchTests` for the large sizes. Timings are printed,
/// not asserted; what is asserted is that the benchmark's counts describe the plan it timed.
final class PlannerBenchTests: XCTestCase {
    func testBench() {
        let big = ProcessInfo.processInfo.environment["SANDPIPER_BENCH"] != nil
        let sizes: [(Int, Int)] = big ? [(50, 1_000), (500, 10_000), (5_000, 100_000), (10_000, 200_000)] : [(50, 1_000)]
        for (h, v) in sizes {
            let r = PlannerBenchmark.run(hosts: h, vms: v, seed: 1)
            print("bench hosts=\(h) vms=\(v) plan=\(r.seconds)s generate=\(r.generateSeconds)s actions=\(r.actions) migrations=\(r.migrations) swaps=\(r.swaps) hotHosts=\(r.hotHosts) resolved=\(r.hotspotsResolved) unresolved=\(r.unresolved)")
            // The same fleet planned here, counted from the plan's actions and hotspots.
            let (spec, obs, policy) = FleetGenerator.generate(hosts: h, vms: v, seed: 1)
            let plan = Planner.plan(spec: spec, observation: obs, policy: policy)
            let hot = Set(plan.hotspots.filter { $0.vm == nil }.map(\.host))
            XCTAssertEqual(r.hotHosts, hot.count)
            XCTAssertGreaterThan(r.hotHosts, 0, "the generated fleet has hot hosts to relieve")
            XCTAssertEqual(r.actions, plan.actions.count)
            XCTAssertEqual(r.migrations, plan.actions.filter { $0.kind == .migrate }.count)
            XCTAssertLessThanOrEqual(r.migrations, policy.placement.maxMigrationsPerRun)
            XCTAssertEqual(r.hotspotsResolved + Set(plan.unresolved.compactMap { $0.vm == nil ? $0.host : nil }).count,
                           r.hotHosts)
        }
    }
}
