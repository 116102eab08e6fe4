import Foundation
import SandpiperEngine
import SandpiperGitOps
import SandpiperModel
import XCTest

/// Change windows on the demo fleet (test driver) under `full`: the reconciler's injected clock decides whether
/// batch1's hotspot migration is applied or proposed; allocations apply either way; a constraint repair (a pin)
/// applies outside the window only with `repairOverridesWindows`.
final class ChangeWindowReconcileTests: XCTestCase {
    /// Tuesday 2026-12-01: 23:30 in Berlin is inside "Mon-Fri 22:00-06:00", 13:00 is not.
    let inside = ISO8601DateFormatter().date(from: "2026-12-01T22:30:00Z")!
    let outside = ISO8601DateFormatter().date(from: "2026-12-01T12:00:00Z")!

    struct Run {
        var outcome: ReconcileOutcome
        var connections: FleetConnections
        func runs(_ vm: String, on host: String) throws -> Bool {
            try connections.connection(host)!.domainIfExists(named: vm) != nil
        }
    }

    func reconcile(at date: Date, repairOverrides: Bool = false, pinBatch2: Bool = false) throws -> Run {
        let root = try temporaryDirectory(self).appendingPathComponent("repo")
        let cluster = try copyBundledCluster("demo", into: root)
        let policy = root.appendingPathComponent("Policies/default.yaml")
        try write(try String(contentsOf: policy, encoding: .utf8).replacingOccurrences(of: "automation: manual", with: """
            automation:
              level: full
              windows: [{allow: "Mon-Fri 22:00-06:00", timezone: Europe/Berlin}]
              repairOverridesWindows: \(repairOverrides)
            """), to: policy)
        if pinBatch2 {  // batch2 runs on pm3: pinning it to pm1 makes the planner's repair step move it
            let spec = cluster.appendingPathComponent("cluster.yaml")
            try write(try String(contentsOf: spec, encoding: .utf8).replacingOccurrences(
                of: "  - name: batch2\n", with: "  - name: batch2\n    placement: {host: pm1}\n"), to: spec)
        }
        var connections: FleetConnections?
        let r = Reconciler(path: cluster.path, options: ReconcileOptions())
        r.clock = { date }
        r.connect = { c in
            if let existing = connections { return existing }
            connections = FleetConnections(cluster: c)
            return connections!
        }
        let outcome = try r.run()
        XCTAssertTrue(outcome.succeeded)
        return Run(outcome: outcome, connections: try XCTUnwrap(connections))
    }

    func testOutsideTheWindowTheMigrationIsProposedNotApplied() throws {
        let run = try reconcile(at: outside)
        let applied = run.outcome.applied.flatMap(\.actions)
        XCTAssertTrue(run.outcome.outsideChangeWindow)
        XCTAssertTrue(applied.contains { $0.kind == .tune && $0.vm == "db1" }, "allocations still apply")
        XCTAssertFalse(applied.contains { $0.kind == .migrate }, "\(applied.map(\.id))")
        let proposal = try XCTUnwrap(run.outcome.proposal)
        XCTAssertTrue(proposal.actions.contains { $0.kind == .migrate && $0.vm == "batch1" && $0.to == "pm3" })
        XCTAssertTrue(try run.runs("batch1", on: "pm2"), "the fleet agrees: batch1 was not moved")
        XCTAssertFalse(try run.runs("batch1", on: "pm3"))
    }

    func testInsideTheWindowTheMigrationIsApplied() throws {
        let run = try reconcile(at: inside)
        XCTAssertFalse(run.outcome.outsideChangeWindow)
        XCTAssertTrue(run.outcome.applied.flatMap(\.actions).contains { $0.kind == .migrate && $0.vm == "batch1" })
        XCTAssertNil(run.outcome.proposal)
        XCTAssertTrue(try run.runs("batch1", on: "pm3"))
        XCTAssertFalse(try run.runs("batch1", on: "pm2"))
    }

    func testARepairMoveAppliesOutsideTheWindowOnlyWithTheOverride() throws {
        let overridden = try reconcile(at: outside, repairOverrides: true, pinBatch2: true)
        let applied = overridden.outcome.applied.flatMap(\.actions)
        XCTAssertTrue(applied.contains { $0.kind == .migrate && $0.vm == "batch2" && $0.to == "pm1" },
                      "\(applied.map(\.id))")
        XCTAssertFalse(applied.contains { $0.vm == "batch1" && $0.kind == .migrate }, "the hotspot move waits")
        XCTAssertTrue(try overridden.runs("batch2", on: "pm1"))
        XCTAssertTrue(try overridden.runs("batch1", on: "pm2"))
        XCTAssertTrue(overridden.outcome.proposal?.actions.contains { $0.kind == .migrate && $0.vm == "batch1" } == true)

        let held = try reconcile(at: outside, repairOverrides: false, pinBatch2: true)
        XCTAssertFalse(held.outcome.applied.flatMap(\.actions).contains { $0.kind == .migrate })
        XCTAssertTrue(try held.runs("batch2", on: "pm3"), "without the override the repair is proposed too")
        XCTAssertTrue(held.outcome.proposal?.actions.contains { $0.kind == .migrate && $0.vm == "batch2" } == true)
    }
}
