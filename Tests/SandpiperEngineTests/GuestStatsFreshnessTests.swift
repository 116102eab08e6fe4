import SandpiperEngine
import XCTest

/// Stale guest memory statistics (libvirt's `last-update` does not move) are told apart from live ones.
final class GuestStatsFreshnessTests: XCTestCase {
    private let s: UInt64 = 1_000_000_000

    func testLastUpdateThatMovesIsFresh() {
        var f = GuestStatsFreshness(periods: ["vm": 2])
        for (i, t) in [100, 100, 102, 102, 104, 104].enumerated() { f.record("vm", lastUpdate: UInt64(t), atNs: UInt64(i) * 2 * s) }
        XCTAssertEqual(f.stale(), [])
    }

    func testLastUpdateFrozenOverTwoPeriodsIsStale() {
        var f = GuestStatsFreshness(periods: ["vm": 2])
        for i in 0..<6 { f.record("vm", lastUpdate: 100, atNs: UInt64(i) * 2 * s) }
        XCTAssertEqual(f.stale(), ["vm"])
    }

    func testTooShortToTellIsNotStale() {
        var f = GuestStatsFreshness(periods: ["vm": 10])
        for i in 0..<3 { f.record("vm", lastUpdate: 100, atNs: UInt64(i) * 2 * s) }  // 4 s < 2 periods
        XCTAssertEqual(f.stale(), [])
    }

    func testNoPeriodIsStaleAtOnceAndNoBalloonStatsIsNotJudged() {
        var f = GuestStatsFreshness(periods: ["snap": 0])
        f.record("snap", lastUpdate: 100, atNs: 0)
        f.record("snap", lastUpdate: 100, atNs: 2 * s)
        f.record("none", lastUpdate: nil, atNs: 0)
        f.record("none", lastUpdate: nil, atNs: 20 * s)
        XCTAssertEqual(f.stale(), ["snap"])
    }
}
