import SandpiperEngine
import SandpiperLibvirt
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

/// Live sampling on libvirt's test driver: a guest that appears on a host in the middle of the window (started,
/// or arrived by migration: its counters restart) has no rate for that interval: no sample, never a zero one.
final class LiveSamplingResetTests: XCTestCase {
    func testGuestArrivingMidWindowGetsNoZeroSample() throws {
        let root = try temporaryDirectory(self)
        let dir = try copyBundledCluster("demo", into: root)
        let cluster = try ClusterLoader.load(dir.path)
        let connections = FleetConnections(cluster: cluster)
        defer { connections.closeAll() }
        let pm1 = try XCTUnwrap(connections.connection("pm1"))
        _ = try pm1.define(xml: """
            <domain type='test'><name>late</name><memory unit='MiB'>256</memory><vcpu>1</vcpu>
            <os><type arch='x86_64'>hvm</type></os></domain>
            """)
        let telemetry = LibvirtTelemetry(connections: connections, intervalSeconds: 0.05) { round, _ in
            if round == 1 { try? pm1.start("late") }  // after the first interval
        }
        let result = try telemetry.sample(for: ["late", "web1"], count: 4)
        XCTAssertEqual(result.samples["web1"]?.count, 4)
        // Shut off in round 1 (it uses nothing: 0), started after it: round 2 is its first running snapshot (no
        // rate: no sample), rounds 3 and 4 have measured rates.
        let late = try XCTUnwrap(result.samples["late"])
        XCTAssertEqual(late.count, 3, "\(late)")
        XCTAssertEqual(late.first?.cpu, 0)
        XCTAssertTrue(late.dropFirst().allSatisfy { $0.cpu > 0.5 }, "rates measured on the host, no zero for the reset: \(late)")
    }
}
