import XCTest
import SandpiperModel
@testable import SandpiperPlanner

final class DetectionTests: XCTestCase {
    private func world(cpu: [Double]) -> World {
        var w = World(hosts: 2)
        w.addVM("web1", on: "pm1", cpuSeries: cpu, vcpus: 8)
        return w
    }

    func testTransientSpikeIsNotAHotspot() {
        let plan = world(cpu: [2, 2, 7.5, 2, 2]).plan()
        XCTAssertTrue(plan.hotspots.isEmpty)
        XCTAssertTrue(plan.moves.isEmpty)
    }

    func testSustainedOverloadIsAHotspot() {
        let plan = world(cpu: [6.5, 6.6, 6.7, 6.8, 6.9]).plan()
        let h = try! XCTUnwrap(plan.hotspots.first { $0.vm == nil })
        XCTAssertEqual(h.host, "pm1")
        XCTAssertEqual(h.resource, .cpu)
        XCTAssertEqual(h.overSummary, "5 of 5")
        XCTAssertEqual(h.threshold, 0.75)
        XCTAssertGreaterThan(h.predicted ?? 0, 0.75)
        XCTAssertEqual(plan.host("pm1", after: false)?.hot, [.cpu])
    }

    func testSustainedRiseIsAHotspot() {
        let plan = world(cpu: [5.6, 6.4, 6.8, 7.2, 7.6]).plan()
        XCTAssertEqual(plan.hotspots.filter { $0.vm == nil }.map(\.overSummary), ["4 of 5"])
    }

    func testFallingLoadIsNotConfirmedByPrediction() {
        // 3 of 5 over 75%, but the load has dropped away: AR predicts below the threshold.
        var w = world(cpu: [7.6, 7.4, 7.0, 4.0, 3.2])
        XCTAssertTrue(w.plan().hotspots.filter { $0.vm == nil }.isEmpty)
        let j = HotspotDetector(policy: w.policy).judge([0.95, 0.925, 0.875, 0.5, 0.4], threshold: 0.75)
        XCTAssertEqual(j.over, 3)
        XCTAssertLessThan(j.predicted!, 0.75)
        XCTAssertFalse(j.hot)
        // With prediction off, k of n alone decides.
        w.policy.prediction.order = 0
        XCTAssertEqual(w.plan().hotspots.filter { $0.vm == nil }.count, 1)
    }

    func testKOfN() {
        var w = world(cpu: [6.5, 6.5, 2, 2, 2])
        w.policy.prediction.order = 0
        XCTAssertTrue(w.plan().hotspots.isEmpty, "2 of 5 < k=3")
        w.policy.window.k = 2
        XCTAssertEqual(w.plan().hotspots.map(\.overSummary), ["2 of 5"])
    }

    func testARPredictor() {
        XCTAssertEqual(ARPredictor.predict([0.8, 0.8, 0.8, 0.8], order: 2), 0.8, accuracy: 1e-12)
        // AR(1) Yule-Walker on 1...5: mean 3, phi = r1/r0 = 0.4 -> 3 + 0.4 * 2.
        XCTAssertEqual(ARPredictor.predict([1, 2, 3, 4, 5], order: 1), 3.8, accuracy: 1e-9)
        XCTAssertEqual(ARPredictor.predict([0.5], order: 2), 0.5)
    }

    func testSLATightensHostThreshold() {
        var w = world(cpu: [5.8, 5.8, 5.8, 5.8, 5.8])  // 72.5%: under 75%, over gold's 70%
        XCTAssertTrue(w.plan().hotspots.isEmpty)
        w.spec.slas = [SLA(name: "gold", thresholds: Thresholds(cpu: 0.70), migration: .live)]
        w.updateSpec("web1") { $0.sla = "gold" }
        let plan = w.plan()
        XCTAssertEqual(plan.hotspots.first?.threshold, 0.70)
        XCTAssertEqual(plan.host("pm1", after: false)?.thresholds.cpu, 0.70)
    }

    func testVMAtItsCPUAllocationIsReported() {
        var w = World(hosts: 2)
        w.addVM("busy", on: "pm1", cpu: 2, vcpus: 2)
        let plan = w.plan()
        XCTAssertEqual(plan.hotspots.map { "\($0.vm ?? "-"):\($0.resource.rawValue)" }, ["busy:cpu"])
        let u = try! XCTUnwrap(plan.unresolved.first { $0.vm == "busy" })
        XCTAssertTrue(u.reason.contains("its 2 vCPUs"), u.reason)
    }
}

final class ProfilingTests: XCTestCase {
    func testPercentilePlusHeadroomClampedToLimitAndReservation() {
        var p = Policy()
        p.profiling.headroom = 0.10
        let profiler = Profiler(policy: p)
        let o = Fixture.vm("v", cpu: 1, vcpus: 4)
        var obs = o
        obs.samples = Fixture.samples(cpu: [1, 1, 1, 1, 3])
        // 95th percentile of [1,1,1,1,3] = 1 + 0.8 * 2 = 2.6; + 10% = 2.86.
        XCTAssertEqual(profiler.profile(obs, spec: Fixture.vmSpec("v")).demand.cpu, 2.86, accuracy: 1e-9)
        var limited = Fixture.vmSpec("v")
        limited.resources.cpu = ResourceControl(reservation: 0, limit: 2)
        XCTAssertEqual(profiler.profile(obs, spec: limited).demand.cpu, 2, accuracy: 1e-9)
        var reserved = Fixture.vmSpec("v")
        reserved.resources.cpu = ResourceControl(reservation: 3.5)
        XCTAssertEqual(profiler.profile(obs, spec: reserved).demand.cpu, 3.5, accuracy: 1e-9)
    }

    /// `windowPercentile` (what every profile uses) against values worked out by hand from the definition of the
    /// linear-interpolation percentile (numpy's default): rank = p/100 x (n-1) between the two closest samples.
    func testWindowPercentileByHand() {
        func percentile(_ values: [Double], _ p: Double) -> Double {
            var policy = Policy()
            policy.profiling.percentile = p
            let window = values.map { Sample(cpu: $0) }
            return Profiler(policy: policy).windowPercentile(window[...]) { $0.cpu }
        }
        XCTAssertEqual(percentile([5, 1, 4, 2, 3], 50), 3)                       // rank 2: the median
        XCTAssertEqual(percentile([5, 1, 4, 2, 3], 95), 4.8, accuracy: 1e-12)    // rank 3.8: 4 + 0.8 x (5 - 4)
        XCTAssertEqual(percentile([5, 1, 4, 2, 3], 0), 1)
        XCTAssertEqual(percentile([5, 1, 4, 2, 3], 100), 5)
        XCTAssertEqual(percentile([20, 10], 95), 19.5, accuracy: 1e-12)          // rank 0.95: 10 + 0.95 x 10
        XCTAssertEqual(percentile([3, 3, 1, 3, 9, 3], 90), 6, accuracy: 1e-12)   // sorted 1 3 3 3 3 9, rank 4.5
        XCTAssertEqual(percentile([7], 95), 7)
        // Only the window counts: a profile of 8 samples with n = 5 reads the last five.
        var policy = Policy()
        policy.profiling.headroom = 0
        policy.profiling.percentile = 100
        var vm = Fixture.vm("v", vcpus: 16)
        vm.samples = Fixture.samples(cpu: [15, 14, 13, 1, 2, 3, 4, 5])
        XCTAssertEqual(Profiler(policy: policy).profile(vm, spec: nil).demand.cpu, 5)
    }

    func testBlackBoxVersusGrayBoxMemory() {
        var obs = Fixture.vm("v")
        obs.samples = Fixture.samples(cpu: [1, 1, 1, 1, 1], mem: 1000, swap: [0, 50, 0, 20, 10])
        var p = Policy()
        p.profiling.mode = .blackBox
        // Black-box: +32 MiB per interval with swapping (3 of 5).
        XCTAssertEqual(Profiler(policy: p).profile(obs, spec: nil).demand.mem, 1096, accuracy: 1e-9)
        p.profiling.mode = .grayBox
        // Gray-box: keep 32 MiB free in the guest.
        XCTAssertEqual(Profiler(policy: p).profile(obs, spec: nil).demand.mem, 1032, accuracy: 1e-9)
    }

    func testBlackBoxSwappingRaisesTheBalloonWithinTheLimit() {
        var w = World(hosts: 1)
        w.policy.profiling.mode = .blackBox
        w.addVM("db", on: "pm1", cpu: 1, memoryMiB: 2048, mem: 2040)
        w.update("db") {
            $0.maxMemoryMiB = 8192
            $0.samples = Fixture.samples(cpu: [1, 1, 1, 1, 1], mem: 2040, swap: [5, 5, 5, 5, 5])
        }
        w.updateSpec("db") { $0.memoryMiB = 8192; $0.resources.memory = ResourceControl(limit: 2100) }
        let plan = w.plan()
        XCTAssertTrue(plan.hotspots.contains { $0.vm == "db" && $0.resource == .mem })
        let tune = try! XCTUnwrap(plan.actions.first { $0.kind == .tune && $0.vm == "db" && $0.parameters.balloonMiB != nil })
        // 2040 + 5 * 32 = 2200, capped at the 2100 MiB limit.
        XCTAssertEqual(tune.parameters.balloonMiB, 2100)
        XCTAssertTrue(tune.reason.contains("memory pressure"), tune.reason)
    }
}

final class EntitlementTests: XCTestCase {
    func testWaterFillingBySharesCappedAtDemandAndLimit() {
        typealias C = Entitlements.Claim
        XCTAssertEqual(Entitlements.waterFill(capacity: 4, claims: [C(reservation: 0, cap: 4, shares: 1000),
                                                                    C(reservation: 0, cap: 4, shares: 1000),
                                                                    C(reservation: 0, cap: 4, shares: 2000)]),
                       [1, 1, 2])
        let capped = Entitlements.waterFill(capacity: 4, claims: [C(reservation: 0, cap: 0.5, shares: 1),
                                                                  C(reservation: 0, cap: 4, shares: 1),
                                                                  C(reservation: 0, cap: 4, shares: 1)])
        XCTAssertEqual(capped[0], 0.5, accuracy: 1e-12)
        XCTAssertEqual(capped[1], 1.75, accuracy: 1e-12)
        let reserved = Entitlements.waterFill(capacity: 4, claims: [C(reservation: 2, cap: 4, shares: 1),
                                                                    C(reservation: 0, cap: 4, shares: 1),
                                                                    C(reservation: 0, cap: 4, shares: 1)])
        XCTAssertEqual(reserved[0], 2 + 2.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(reserved.reduce(0, +), 4, accuracy: 1e-12)
    }

    func testContendedHostGetsEntitlements() {
        var w = World(hosts: 1)
        w.policy.placement.swaps = false
        w.addVM("a", on: "pm1", cpu: 4)
        w.addVM("b", on: "pm1", cpu: 4)
        w.addVM("c", on: "pm1", cpu: 4)
        w.updateSpec("c") { $0.resources.cpu.shares = .high }
        let plan = w.plan()
        let e = plan.entitlements.filter { $0.resource == .cpu }
        XCTAssertEqual(e.map(\.vm), ["a", "b", "c"])
        XCTAssertEqual(e.map(\.entitlement), [2, 2, 4])
    }

    func testTunesOnlyWhatDiffers() {
        var w = World(hosts: 1)
        w.addVM("a", on: "pm1", cpu: 1, vcpus: 4)
        XCTAssertTrue(w.plan().actions.isEmpty, "observed tunables match the spec")
        w.updateSpec("a") { $0.resources.cpu = ResourceControl(reservation: 0, limit: 1.5, shares: .high) }
        // A driver without CFS bandwidth (no period/quota reported) gets shares only: quota could never converge.
        let sharesOnly = try! XCTUnwrap(w.plan().actions.first)
        XCTAssertEqual(sharesOnly.parameters.cpuShares, 8000)
        XCTAssertNil(sharesOnly.parameters.cpuQuotaMicros)
        // QEMU with cgroups reports the period and an unlimited quota.
        w.update("a") { $0.tunables.cpuPeriodMicros = 100_000; $0.tunables.cpuQuotaMicros = -1 }
        let tune = try! XCTUnwrap(w.plan().actions.first)
        XCTAssertEqual(tune.kind, .tune)
        XCTAssertEqual(tune.parameters.cpuShares, 8000)
        XCTAssertEqual(tune.parameters.cpuQuotaMicros, 150_000)
        XCTAssertEqual(tune.parameters.cpuPeriodMicros, 100_000)
        XCTAssertNil(tune.parameters.memoryHardLimitMiB)
        XCTAssertTrue(tune.reason.contains("cpu shares 4000 -> 8000"), tune.reason)
    }

    func testResizeWhenSpecDiffers() {
        var w = World(hosts: 1)
        w.addVM("a", on: "pm1", cpu: 1, vcpus: 2)
        w.updateSpec("a") { $0.vcpus = 4 }
        w.update("a") { $0.tunables.cpuShares = 4000 }
        let plan = w.plan()
        XCTAssertEqual(plan.actions.map(\.kind), [.resize])
        XCTAssertEqual(plan.actions[0].parameters.vcpus, 4)
        XCTAssertNil(plan.actions[0].parameters.memoryMiB)
        XCTAssertEqual(plan.drift.map(\.kind), [.allocation])
    }
}
