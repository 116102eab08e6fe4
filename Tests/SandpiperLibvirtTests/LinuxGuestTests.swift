import Foundation
import SandpiperLibvirt
import SandpiperTestSupport
import XCTest

/// A real Linux guest on a real session-mode daemon (shared lab): its load, driven through the console
/// (virDomainOpenConsole), shows in libvirt's counters, and its guest memory statistics are live only once a
/// stats period is set — which `ensureMemoryStatsPeriod` does for guests defined without one.
final class LinuxGuestTests: XCTestCase {
    func testConsoleLoadShowsInCountersAndStatsPeriodIsSet() throws {
        if let reason = LinuxGuest.unavailableReason() { throw XCTSkip(reason) }
        let shared = try SharedQemuLab.get(.session)
        let name = "lg-stats"
        shared.removeGuests([name])
        defer { shared.removeGuests([name]) }
        // No <stats period> in its XML: libvirt's guest fields are the one snapshot taken at boot.
        try shared.startGuest(name, on: "A", uuid: "7a7a7a7a-0000-4000-8000-000000000001", statsPeriod: 0)
        let a = shared.a

        // CPU: one busy loop is ~1 core of cpu.time; idle is near 0 (independent oracle: the guest's own loop count).
        XCTAssertEqual(try LinuxGuest.command(a, name, "cpu 1"), "SP cpu=1 pct=100")
        let busy = try cpuRate(a, name, seconds: 3)
        XCTAssertGreaterThan(busy, 0.4, "a busy loop shows in cpu.time")
        try LinuxGuest.command(a, name, "cpu 0")
        let idle = try cpuRate(a, name, seconds: 3)
        XCTAssertLessThan(idle, 0.25, "idle after 'cpu 0' (busy was \(busy))")

        // Without a period, last-update never moves and filling memory does not show.
        let before = try XCTUnwrap(a.allDomainStats().domains[name])
        XCTAssertNotNil(before.balloonLastUpdate, "the balloon driver reported once")
        try LinuxGuest.command(a, name, "mem 100")
        Thread.sleep(forTimeInterval: 2.5)
        let stale = try XCTUnwrap(a.allDomainStats().domains[name])
        XCTAssertEqual(stale.balloonLastUpdate, before.balloonLastUpdate, "no stats period: a one-time snapshot")
        XCTAssertEqual(stale.balloonUsableKiB, before.balloonUsableKiB)

        // Sandpiper sets one; the statistics then follow the guest (oracle: its own /proc/meminfo).
        XCTAssertEqual(a.ensureMemoryStatsPeriod(seconds: 1)[name], 1)
        XCTAssertEqual(a.ensureMemoryStatsPeriod(seconds: 5)[name], 1, "a period already set is left alone")
        let guest = try LinuxGuest.meminfo(a, name)
        let fresh = try poll(timeout: 20) { () -> DomainStats? in
            let s = try a.allDomainStats().domains[name]
            return (s?.balloonLastUpdate ?? 0) > (before.balloonLastUpdate ?? 0) ? s : nil
        }
        let usable = Double(try XCTUnwrap(fresh.balloonUsableKiB)) / 1024
        XCTAssertEqual(usable, guest.available, accuracy: 16, "libvirt's usable is the guest's MemAvailable")
        XCTAssertLessThan(usable, Double(before.balloonUsableKiB ?? 0) / 1024 - 80, "the 100 MiB now show")
    }

    private func cpuRate(_ c: LibvirtConnection, _ name: String, seconds: Double) throws -> Double {
        let s0 = try c.allDomainStats()
        Thread.sleep(forTimeInterval: seconds)
        let s1 = try c.allDomainStats()
        let u = UtilizationCalculator.utilization(previous: s0, current: s1).first { $0.name == name }
        return try XCTUnwrap(u?.cpuCores)
    }
}

/// Polls `body` until it returns a value or `timeout` passes (conditions, never fixed sleeps, are the oracle).
func poll<T>(timeout: TimeInterval, every: TimeInterval = 0.5, _ body: () throws -> T?) throws -> T {
    let deadline = Date().addingTimeInterval(timeout)
    while true {
        if let v = try body() { return v }
        guard Date() < deadline else { throw NSError(domain: "poll", code: 1, userInfo: [NSLocalizedDescriptionKey: "condition not met within \(timeout) s"]) }
        Thread.sleep(forTimeInterval: every)
    }
}
