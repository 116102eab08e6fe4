import Foundation
import SandpiperEngine
import SandpiperGitOps
import SandpiperModel
import XCTest

/// Per-VM `automation:` on the demo fleet (test driver) under a `full` policy: reconcile applies the actions of
/// VMs that allow it and proposes the rest; a `disabled` VM gets no action at all.
final class VMAutomationTests: XCTestCase {
    func testPerVMAutomationDecidesWhatReconcileApplies() throws {
        let root = try temporaryDirectory(self).appendingPathComponent("repo")
        let cluster = try copyBundledCluster("demo", into: root)
        let policy = root.appendingPathComponent("Policies/default.yaml")
        try write(try String(contentsOf: policy, encoding: .utf8)
            .replacingOccurrences(of: "automation: manual", with: "automation: full"), to: policy)
        // batch1 (the demo's one migration): manual. web1 (a memtune in the demo's plan): disabled.
        let spec = cluster.appendingPathComponent("cluster.yaml")
        var text = try String(contentsOf: spec, encoding: .utf8)
        text = text.replacingOccurrences(of: "  - name: batch1\n", with: "  - name: batch1\n    automation: manual\n")
        text = text.replacingOccurrences(of: "  - name: web1\n", with: "  - name: web1\n    automation: disabled\n")
        try write(text, to: spec)

        var connections: FleetConnections?
        var o = ReconcileOptions()
        o.commit = false
        let r = Reconciler(path: cluster.path, options: o)
        r.connect = { c in
            if let existing = connections { return existing }
            connections = FleetConnections(cluster: c)
            return connections!
        }
        let outcome = try r.run()
        let applied = outcome.applied.flatMap(\.actions)
        XCTAssertFalse(applied.isEmpty, "the other VMs' tunes are applied (full)")
        XCTAssertFalse(applied.contains { $0.vm == "batch1" }, "\(applied.map(\.id))")
        XCTAssertFalse(applied.contains { $0.vm == "web1" }, "\(applied.map(\.id))")
        XCTAssertTrue(applied.contains { $0.vm == "db1" && $0.kind == .tune })
        let proposal = try XCTUnwrap(outcome.proposal, "batch1's move is left for review")
        XCTAssertTrue(proposal.actions.contains { $0.kind == .migrate && $0.vm == "batch1" })
        XCTAssertFalse(proposal.actions.contains { $0.vm == "web1" }, "disabled: not even proposed")
        // The fleet agrees: batch1 still on pm2.
        XCTAssertNotNil(try connections!.connection("pm2")!.domainIfExists(named: "batch1"))
        XCTAssertNil(try connections!.connection("pm3")!.domainIfExists(named: "batch1"))
    }
}

/// Declared capacity against libvirt's: below is honoured silently (the planner uses it), above is warned about.
final class DeclaredCapacityTests: XCTestCase {
    func testOnlyCapacityAboveWhatLibvirtReportsIsWarnedAbout() throws {
        let root = try temporaryDirectory(self).appendingPathComponent("repo")
        let cluster = try copyBundledCluster("demo", into: root)
        let spec = cluster.appendingPathComponent("cluster.yaml")
        var text = try String(contentsOf: spec, encoding: .utf8)
        // The demo's node files have 8 CPUs and 16 GiB each.
        text = text.replacingOccurrences(of: "uri: test:hosts/pm1.xml\n    capacity: {cpus: 8, memory: 16GiB",
                                         with: "uri: test:hosts/pm1.xml\n    capacity: {cpus: 16, memory: 32GiB")
        text = text.replacingOccurrences(of: "uri: test:hosts/pm2.xml\n    capacity: {cpus: 8, memory: 16GiB",
                                         with: "uri: test:hosts/pm2.xml\n    capacity: {cpus: 4, memory: 8GiB")
        try write(text, to: spec)
        let loaded = try ClusterLoader.load(cluster.path)
        let connections = FleetConnections(cluster: loaded, readOnly: true)
        defer { connections.closeAll() }
        let warnings = connections.inventory(now: 0).warnings
        XCTAssertEqual(warnings.filter { $0.hasPrefix("pm1:") }.count, 2, "\(warnings)")
        XCTAssertTrue(warnings.contains("pm1: spec declares 16 CPUs, libvirt reports 8; using 8"), "\(warnings)")
        XCTAssertFalse(warnings.contains { $0.hasPrefix("pm2:") }, "declared below observed is honoured: \(warnings)")
    }
}
