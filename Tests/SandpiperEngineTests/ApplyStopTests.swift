import Foundation
import XCTest
import SandpiperEngine
import SandpiperModel

/// `ApplyOptions.shouldStop` (`sandpiper run` on SIGTERM): the wave in flight finishes, no later action starts,
/// and the journal says exactly that.
final class ApplyStopTests: XCTestCase {
    func testStopAfterTheFirstWaveStartsNothingMore() throws {
        let root = try temporaryDirectory(self)
        let cluster = try ClusterLoader.load(try copyBundledCluster("demo", into: root).path)
        let connections = FleetConnections(cluster: cluster)
        addTeardownBlock { connections.closeAll() }
        let snapshot = try Engine.observe(cluster, connections: connections, state: nil)
        let document = Engine.plan(cluster, snapshot: snapshot, state: nil)
        XCTAssertGreaterThan(document.actions.count, 1)

        nonisolated(unsafe) var asked = 0
        var options = ApplyOptions()
        options.shouldStop = { asked += 1; return asked > 1 }
        // One action per wave, so there are waves after the first to not start.
        options.maxParallel = 1
        let applier = Applier(cluster: cluster, connections: connections, state: nil, options: options)
        let report = try applier.apply(document)

        let ran = report.outcomes.filter { $0.status != .skipped }
        let skipped = report.outcomes.filter { $0.status == .skipped }
        XCTAssertEqual(ran.count, 1)
        XCTAssertTrue(ran.allSatisfy { $0.wave == 1 }, "only the first wave ran")
        XCTAssertEqual(ran.count + skipped.count, document.actions.count)
        XCTAssertFalse(skipped.isEmpty)
        XCTAssertTrue(skipped.allSatisfy { $0.detail == "not started: the controller is stopping" })
        XCTAssertEqual(applier.state.lastPlan?.status, "stopped", "a plan cut short is not recorded as applied")
        // The journal: every action that started has its outcome; skipped ones never started.
        let journal = applier.state.journal
        for o in skipped {
            XCTAssertFalse(journal.contains { $0.actionID == o.actionID && $0.status == .started })
        }
        for o in ran {
            XCTAssertTrue(journal.contains { $0.actionID == o.actionID && $0.status == .started })
            XCTAssertTrue(journal.contains { $0.actionID == o.actionID && $0.status == o.status })
        }
    }
}
