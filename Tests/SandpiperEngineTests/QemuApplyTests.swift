import Foundation
import SandpiperEngine
import SandpiperLibvirt
import SandpiperModel
import SandpiperTestSupport
import XCTest

/// The whole engine on two real libvirtd/QEMU daemons (session mode, shared/labs recipe): a VM pinned to host B
/// runs on host A, so the plan repairs the placement with a live migration and `apply` performs it.
final class QemuApplyTests: XCTestCase {
    func testPlanAndApplyLiveMigrateBetweenRealDaemons() throws {
        if let reason = QemuLab.unavailableReason() { throw XCTSkip(reason) }
        let lab = try QemuLab()
        var cleanup: [LibvirtConnection] = []
        defer { lab.teardown(domain: "tiny", connections: cleanup) }
        let (setupA, setupB) = try lab.startPair(
            hostUUIDs: ("33333333-3333-4333-8333-333333333333", "44444444-4444-4444-8444-444444444444"), migrationPortMin: 49500)
        cleanup += [setupA, setupB]
        _ = try setupA.define(xml: QemuLab.tinyXML())
        try setupA.start("tiny")

        // An operator repository around the two daemons.
        let root = try temporaryDirectory(self)
        try FileManager.default.createDirectory(at: root.appendingPathComponent("Policies"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: repositoryRoot.appendingPathComponent("Policies/default.yaml"),
                                         to: root.appendingPathComponent("Policies/default.yaml"))
        let dir = try lab.writeCluster(root: root)

        let cluster = try ClusterLoader.load(dir.path)
        let connections = FleetConnections(cluster: cluster)
        defer { connections.closeAll() }
        let snapshot = try Engine.observe(cluster, connections: connections, state: nil)
        XCTAssertEqual(snapshot.observation.vms.map { "\($0.name)@\($0.host)" }, ["tiny@a"])
        let document = Engine.plan(cluster, snapshot: snapshot, state: nil)
        let moves = document.actions.filter { $0.kind == .migrate }
        XCTAssertEqual(moves.map { "\($0.vm) \($0.from ?? "") -> \($0.to ?? "") \($0.mode?.rawValue ?? "")" }, ["tiny a -> b live"])

        let applier = Applier(cluster: cluster, connections: connections, state: nil)
        XCTAssertEqual(applier.staleness(of: document, stateBefore: nil), [])
        let report = try applier.apply(document)
        XCTAssertTrue(report.succeeded, "\(report.outcomes)")
        let migrated = try XCTUnwrap(report.outcomes.first { $0.actionID == moves[0].id })
        XCTAssertNil(migrated.detail, "moved live, no cold fallback: \(migrated.detail ?? "")")

        XCTAssertEqual(try connections.connection("b")!.domain(named: "tiny").state, .running)
        XCTAssertNil(try connections.connection("a")!.domainIfExists(named: "tiny"))
        let state = try XCTUnwrap(try StateFile(directory: dir).read())
        XCTAssertEqual(state.inventory?.vms.first?.host, "b")
        // Credentials never reach the state: the socket URIs carry none, and no URI is stored at all.
        let text = try String(contentsOf: StateFile(directory: dir).url, encoding: .utf8)
        XCTAssertFalse(text.contains("libvirt-sock"))

        // Converged: the next plan moves nothing.
        let next = Engine.plan(cluster, snapshot: try Engine.observe(cluster, connections: connections, state: state),
                               state: state)
        XCTAssertFalse(next.actions.contains { $0.kind == .migrate })
    }
}
