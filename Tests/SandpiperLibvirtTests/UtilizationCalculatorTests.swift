import XCTest
@testable import SandpiperLibvirt

final class UtilizationCalculatorTests: XCTestCase {
    private func stats(_ name: String = "vm", cpu: UInt64? = nil, rx: UInt64? = nil, tx: UInt64? = nil,
                       cur: UInt64? = nil, unused: UInt64? = nil, avail: UInt64? = nil, usable: UInt64? = nil,
                       swapIn: UInt64? = nil, swapOut: UInt64? = nil) -> DomainStats {
        DomainStats(name: name, cpuTimeNs: cpu, netRxBytes: rx, netTxBytes: tx, balloonCurrentKiB: cur,
                    balloonUnusedKiB: unused, balloonAvailableKiB: avail, balloonUsableKiB: usable,
                    balloonSwapInKiB: swapIn, balloonSwapOutKiB: swapOut)
    }

    private func snap(_ t: UInt64, _ doms: DomainStats...) -> StatsSnapshot {
        StatsSnapshot(timestampNs: t, domains: Dictionary(uniqueKeysWithValues: doms.map { ($0.name, $0) }))
    }

    func testRatesOverTenSeconds() throws {
        let a = snap(1_000_000_000, stats(cpu: 5_000_000_000, rx: 1_000, tx: 2_000, cur: 2_097_152, unused: 524_288,
                                          swapIn: 100, swapOut: 50))
        let b = snap(11_000_000_000, stats(cpu: 20_000_000_000, rx: 1_000 + 6_250_000, tx: 2_000 + 6_250_000,
                                           cur: 2_097_152, unused: 262_144, swapIn: 1_100, swapOut: 1_050))
        let u = try XCTUnwrap(UtilizationCalculator.utilization(previous: a, current: b).first)
        XCTAssertEqual(u.cpuCores!, 1.5, accuracy: 1e-9)                 // 15 s of CPU in 10 s
        XCTAssertEqual(u.netMbps!, 10.0, accuracy: 1e-9)                 // 12.5 MB * 8 / 10 s
        XCTAssertEqual(u.memoryUsedMiB!, 2048 - 256, accuracy: 1e-9)     // current - unused
        XCTAssertEqual(u.guestFreeMiB!, 256, accuracy: 1e-9)
        XCTAssertEqual(u.swapKiBps!, 200, accuracy: 1e-9)                // 2000 KiB / 10 s
    }

    func testFirstSnapshotHasLevelsButNoRates() {
        let u = UtilizationCalculator.utilization(previous: nil, current: snap(5, stats(cpu: 9, cur: 1024, unused: 512)))
        XCTAssertEqual(u, [DomainUtilization(name: "vm", memoryUsedMiB: 0.5, guestFreeMiB: 0.5)])
    }

    func testCounterResetYieldsNilNotNegativeOrHuge() throws {
        // The VM restarted (or migrated in) between the snapshots: every cumulative counter restarted from ~0.
        let a = snap(0, stats(cpu: 900_000_000_000, rx: 10_000_000, tx: 10_000_000, swapIn: 5_000, swapOut: 5_000))
        let b = snap(10_000_000_000, stats(cpu: 1_000_000_000, rx: 100, tx: 100, swapIn: 0, swapOut: 0))
        let u = try XCTUnwrap(UtilizationCalculator.utilization(previous: a, current: b).first)
        XCTAssertNil(u.cpuCores)
        XCTAssertNil(u.netMbps)
        XCTAssertNil(u.swapKiBps)
        // The next interval after the reset is normal again.
        let c = snap(20_000_000_000, stats(cpu: 6_000_000_000, rx: 100, tx: 100, swapIn: 0, swapOut: 0))
        let u2 = try XCTUnwrap(UtilizationCalculator.utilization(previous: b, current: c).first)
        XCTAssertEqual(u2.cpuCores!, 0.5, accuracy: 1e-9)
        XCTAssertEqual(u2.netMbps!, 0, accuracy: 1e-9)
        XCTAssertEqual(u2.swapKiBps!, 0, accuracy: 1e-9)
    }

    func testPartialResetOnlyAffectsThatRate() throws {
        // One NIC was hot-unplugged: the summed tx counter went down, CPU is fine.
        let a = snap(0, stats(cpu: 1_000_000_000, rx: 1_000, tx: 5_000))
        let b = snap(1_000_000_000, stats(cpu: 1_250_000_000, rx: 2_000, tx: 100))
        let u = try XCTUnwrap(UtilizationCalculator.utilization(previous: a, current: b).first)
        XCTAssertEqual(u.cpuCores!, 0.25, accuracy: 1e-9)
        XCTAssertNil(u.netMbps)
    }

    func testDomainMissingFromPreviousSnapshot() throws {
        let a = snap(0, stats("old", cpu: 1))
        let b = snap(10_000_000_000, stats("old", cpu: 10_000_000_001), stats("new", cpu: 3_000_000_000, cur: 4096))
        let us = UtilizationCalculator.utilization(previous: a, current: b)
        XCTAssertEqual(us.map(\.name), ["new", "old"])
        XCTAssertNil(us[0].cpuCores)                 // no baseline: unknown, not 0.3 cores
        XCTAssertEqual(us[0].memoryUsedMiB, 4)       // level still reported (fallback: balloon current)
        XCTAssertEqual(us[1].cpuCores!, 1.0, accuracy: 1e-9)
    }

    func testNonPositiveIntervalGivesNoRates() throws {
        let a = snap(10, stats(cpu: 1))
        let b = snap(10, stats(cpu: 100))
        XCTAssertNil(UtilizationCalculator.utilization(previous: a, current: b).first?.cpuCores)
        let c = snap(5, stats(cpu: 200))   // clock went backwards (snapshots swapped by the caller)
        XCTAssertNil(UtilizationCalculator.utilization(previous: a, current: c).first?.cpuCores)
    }

    func testGuestFreeIsMemAvailableWhereReported() {
        let withUsable = UtilizationCalculator.utilization(previous: nil, current: snap(1, stats(cur: 4096, unused: 1024, usable: 3072)))
        XCTAssertEqual(withUsable.first?.guestFreeMiB, 3)
        XCTAssertEqual(withUsable.first?.memoryUsedMiB, 1)
        let unusedOnly = UtilizationCalculator.utilization(previous: nil, current: snap(1, stats(cur: 4096, unused: 1024)))
        XCTAssertEqual(unusedOnly.first?.guestFreeMiB, 1)
    }

    func testMemoryUsedPreferenceOrder() {
        // MemAvailable (usable) first: the guest's page cache and reclaimable memory are not "used".
        XCTAssertEqual(UtilizationCalculator.memoryUsedMiB(stats(cur: 4096, unused: 1024, avail: 9999, usable: 2048)), 2)
        XCTAssertEqual(UtilizationCalculator.memoryUsedMiB(stats(cur: 4096, unused: 1024)), 3)
        XCTAssertEqual(UtilizationCalculator.memoryUsedMiB(stats(avail: 8192, usable: 2048)), 6)
        XCTAssertEqual(UtilizationCalculator.memoryUsedMiB(stats(cur: 2048)), 2)
        XCTAssertNil(UtilizationCalculator.memoryUsedMiB(stats()))
        XCTAssertEqual(UtilizationCalculator.memoryUsedMiB(stats(cur: 1024, unused: 4096)), 0)  // never negative
    }

    func testSamplerRemembersPreviousSnapshot() throws {
        var sampler = UtilizationSampler()
        XCTAssertNil(sampler.ingest(snap(0, stats(cpu: 0))).first?.cpuCores)
        XCTAssertEqual(sampler.ingest(snap(2_000_000_000, stats(cpu: 1_000_000_000))).first?.cpuCores, 0.5)
        XCTAssertEqual(sampler.previous?.timestampNs, 2_000_000_000)
    }
}
