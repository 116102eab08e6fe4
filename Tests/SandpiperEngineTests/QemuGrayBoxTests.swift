import Foundation
import SandpiperEngine
import SandpiperLibvirt
import SandpiperModel
import SandpiperTestSupport
import XCTest

/// Gray-box memory profiling on a real Linux guest (shared session lab, live telemetry every 2 s): the guest fills
/// its memory until less than `guestFreeTarget` (96 MiB) is available; the plan raises its balloon to used +
/// target in one step, apply sets it, and the guest then has the target free. The same holds for a guest whose
/// XML has no stats period (libvirt's guest numbers would be a boot-time snapshot): observing sets one.
final class QemuGrayBoxTests: XCTestCase {
    func testGrayBoxRaisesBalloonInOneStep() throws {
        try grayBox(vm: "gb-period", statsPeriod: 2)
    }

    func testGrayBoxWithoutStatsPeriodInXMLBehavesTheSame() throws {
        try grayBox(vm: "gb-noperiod", statsPeriod: 0)
    }

    private func grayBox(vm: String, statsPeriod: Int) throws {
        if let reason = LinuxGuest.unavailableReason() { throw XCTSkip(reason) }
        let shared = try SharedQemuLab.get(.session)
        shared.removeGuests([vm])
        defer { shared.removeGuests([vm]) }
        let uuid = statsPeriod == 0 ? "9b9b9b9b-0000-4000-8000-000000000002" : "9b9b9b9b-0000-4000-8000-000000000001"
        try shared.startGuest(vm, on: "A", uuid: uuid, statsPeriod: statsPeriod)
        let a = shared.a

        // A 432 MiB balloon (of 512), then fill the guest until ~60 MiB remain available (the guest's own view).
        try a.setMemory(vm, mib: 432, scope: .live)
        let shrunk = try pollValue(timeout: 60) { () -> Double? in
            let m = try LinuxGuest.meminfo(a, vm)
            return m.total < 432 ? m.available : nil
        }
        let balloonBefore = Double(try a.domain(named: vm).memoryMiB)
        let fill = Int(shrunk) - 60
        XCTAssertEqual(try LinuxGuest.command(a, vm, "mem \(fill)", timeout: 120), "SP mem=\(fill)")
        let full = try LinuxGuest.meminfo(a, vm)
        XCTAssertLessThan(full.available, 96, "the guest is short of its free target: \(full)")
        let usedByGuest = 432 - full.available  // balloon less what the guest can still use

        let root = try temporaryDirectory(self)
        let dir = try writeCluster(root: root, shared: shared, vm: vm)
        let cluster = try ClusterLoader.load(dir.path)
        let connections = FleetConnections(cluster: cluster)
        defer { connections.closeAll() }

        let snapshot = try Engine.observe(cluster, connections: connections, state: nil)
        XCTAssertFalse(snapshot.inventory.warnings.contains { $0.contains("black-box") }, "\(snapshot.inventory.warnings)")
        let samples = try XCTUnwrap(snapshot.observation.vms.first { $0.name == vm }?.samples)
        XCTAssertEqual(samples.count, 5)
        for s in samples {
            // Live guest numbers: MemAvailable as the guest itself reports it, not the boot-time snapshot.
            XCTAssertEqual(try XCTUnwrap(s.guestFreeMiB), full.available, accuracy: 12, "\(samples)")
        }
        let document = Engine.plan(cluster, snapshot: snapshot, state: nil)
        let tunes = document.actions.filter { $0.vm == vm && $0.parameters.balloonMiB != nil }
        XCTAssertEqual(tunes.count, 1, "\(document.actions.map(\.reason))")
        let balloon = try XCTUnwrap(tunes.first?.parameters.balloonMiB)
        XCTAssertEqual(balloon, usedByGuest + 96, accuracy: 12, "used + guestFreeTarget (used \(usedByGuest) MiB)")

        let report = try Applier(cluster: cluster, connections: connections, state: nil).apply(document)
        XCTAssertTrue(report.succeeded, "\(report.outcomes)")
        // The balloon deflates (libvirt reports it once the guest has), and the guest's MemTotal grows with it.
        _ = try pollValue(timeout: 60) { try abs(Double(a.domain(named: vm).memoryMiB) - balloon) <= 1 ? true : nil }
        let after = try pollValue(timeout: 60) { () -> Double? in
            let m = try LinuxGuest.meminfo(a, vm)
            return m.total >= full.total + (balloon - balloonBefore) - 4 ? m.available : nil
        }
        // The guest now has about the target available (its own view), and the next plan raises nothing more.
        XCTAssertEqual(after, 96, accuracy: 12)
        let state = try StateFile(directory: dir).read()
        let next = Engine.plan(cluster, snapshot: try Engine.observe(cluster, connections: connections, state: state),
                               state: state)
        XCTAssertEqual(next.actions.filter { $0.vm == vm && $0.parameters.balloonMiB != nil }.map(\.reason), [],
                       "one step: nothing more to raise")
    }

    private func writeCluster(root: URL, shared: SharedQemuLab, vm: String) throws -> URL {
        try LabCluster.writePolicy(root: root, edits: [("guestFreeTarget: 32MiB", "guestFreeTarget: 96MiB")])
        return try LabCluster.write(root: root, name: "gray", hosts: [("a", shared.uri("A"))],
                                    vms: ["{name: \(vm), vcpus: 1, memory: 512MiB, placement: {host: a}}"])
    }
}

/// Polls `body` until it returns a value or `timeout` passes.
func pollValue<T>(timeout: TimeInterval, every: TimeInterval = 0.5, _ body: () throws -> T?) throws -> T {
    let deadline = Date().addingTimeInterval(timeout)
    while true {
        if let v = try body() { return v }
        guard Date() < deadline else {
            throw NSError(domain: "poll", code: 1, userInfo: [NSLocalizedDescriptionKey: "condition not met within \(timeout) s"])
        }
        Thread.sleep(forTimeInterval: every)
    }
}
