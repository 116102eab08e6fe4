import Foundation
import SandpiperEngine
import SandpiperModel
import SandpiperSimulation
import XCTest

/// The bundled balance cluster (4 hosts, uneven calm load, Policies/balance.yaml): balance on vs off, judged on the
/// simulator's ground-truth timeline (per-interval host utilization of the VMs where they actually are).
final class BalanceSimulateTests: XCTestCase {
    func simulate(balance: Bool) throws -> SimulationReport {
        var cluster = try ClusterLoader.load(repositoryRoot.appendingPathComponent("Clusters/balance").path)
        cluster.policy.balance.enabled = balance
        return try Simulator(cluster: cluster).run()
    }

    static func cpuSpread(_ interval: SimulationReport.Interval) -> Double {
        let cpu = interval.hosts.map(\.cpu)
        return cpu.max()! - cpu.min()!
    }

    func testBalanceNarrowsTheSpreadOnceAndSettles() throws {
        let off = try simulate(balance: false)
        XCTAssertEqual(off.migrations, 0)
        XCTAssertGreaterThan(Self.cpuSpread(off.timeline.last!), 0.4, "left alone the fleet stays uneven")

        let on = try simulate(balance: true)
        let first = Self.cpuSpread(on.timeline.first!), last = Self.cpuSpread(on.timeline.last!)
        XCTAssertGreaterThan(first, 0.4)
        XCTAssertLessThan(last, 0.15, "under maxSpread at the end")
        XCTAssertGreaterThan(on.migrations, 0)
        XCTAssertEqual(on.hotspotSeconds, 0, "never pushes a host over a threshold")
        XCTAssertEqual(on.applyFailures, 0)
        let moves = on.actions.filter { $0.kind == "migrate" }
        XCTAssertTrue(moves.allSatisfy { $0.reason.hasPrefix("balance: ") })
        XCTAssertEqual(Set(moves.map(\.vm)).count, moves.count, "no VM moves twice (no ping-pong)")
        // Settled: the last half of the run plans no move.
        XCTAssertTrue(moves.allSatisfy { $0.plannedAt < 300 }, "\(moves.map(\.plannedAt))")
    }
}
