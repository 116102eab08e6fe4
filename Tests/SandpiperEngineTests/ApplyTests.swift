import Foundation
import SandpiperEngine
import SandpiperLibvirt
import SandpiperModel
import XCTest

/// Plan -> apply on the real libvirt test driver. One `FleetConnections` per test holds the test-driver
/// hosts for the whole test (their state lives as long as the connection).
final class ApplyTests: XCTestCase {
    struct Setup {
        var cluster: LoadedCluster
        var connections: FleetConnections
        var snapshot: FleetSnapshot
        var document: PlanDocument
    }

    func makeDemo() throws -> Setup {
        let root = try temporaryDirectory(self)
        let dir = try copyBundledCluster("demo", into: root)
        let cluster = try ClusterLoader.load(dir.path)
        let connections = FleetConnections(cluster: cluster)
        addTeardownBlock { connections.closeAll() }
        let snapshot = try Engine.observe(cluster, connections: connections, state: nil)
        let document = Engine.plan(cluster, snapshot: snapshot, state: nil)
        return Setup(cluster: cluster, connections: connections, snapshot: snapshot, document: document)
    }

    func testDemoPlanMovesBatch1OffTheHotHost() throws {
        let s = try makeDemo()
        let moves = s.document.actions.filter { $0.kind == .migrate }
        XCTAssertEqual(moves.map { "\($0.vm) \($0.from!)->\($0.to!)" }, ["batch1 pm2->pm3"])
        XCTAssertEqual(s.document.hotspots.map { "\($0.host) \($0.resource)" }, ["pm2 cpu"])
        XCTAssertEqual(s.document.id?.count, 12)
        XCTAssertEqual(s.document.id, Engine.planID(s.document))
        // Same inputs, same bytes.
        let again = Engine.plan(s.cluster, snapshot: s.snapshot, state: nil)
        XCTAssertEqual(try again.encoded(), try s.document.encoded())
    }

    func testApplyExecutesThePlanAndJournalsEveryAction() throws {
        let s = try makeDemo()
        let applier = Applier(cluster: s.cluster, connections: s.connections, state: nil,
                              options: ApplyOptions(observationNow: s.snapshot.observation.now))
        XCTAssertEqual(applier.staleness(of: s.document, stateBefore: nil), [])
        let report = try applier.apply(s.document)
        XCTAssertTrue(report.succeeded, "\(report.outcomes)")
        XCTAssertEqual(report.done, s.document.actions.count)

        // The fleet really changed: batch1 runs on pm3 and is gone from pm2.
        XCTAssertEqual(try s.connections.connection("pm3")!.domain(named: "batch1").state, .running)
        XCTAssertNil(try s.connections.connection("pm2")!.domainIfExists(named: "batch1"))

        // The state file tells the same story.
        let state = try XCTUnwrap(try StateFile(directory: s.cluster.directory).read())
        XCTAssertEqual(state.lastPlan, .init(id: s.document.id!, status: "applied"))
        let batch1 = try XCTUnwrap(state.inventory?.vms.first { $0.name == "batch1" })
        XCTAssertEqual(batch1.host, "pm3")
        XCTAssertEqual(batch1.lastMovedAt, s.snapshot.observation.now)
        for action in s.document.actions {
            let statuses = state.journal.filter { $0.actionID == action.id }.map(\.status)
            XCTAssertEqual(statuses, [.started, .done], "journal of action \(action.id)")
        }
        XCTAssertTrue(state.inventory!.vms.allSatisfy { $0.samples.isEmpty }, "no telemetry in state.json")

        // A second plan from the new fleet does not move batch1 back.
        let snapshot = try Engine.observe(s.cluster, connections: s.connections, state: state)
        let next = Engine.plan(s.cluster, snapshot: snapshot, state: state)
        XCTAssertFalse(next.actions.contains { $0.kind == .migrate }, "\(next.actions.map(\.reason))")
    }

    func testStalePlanIsRefusedNamingWhatChanged() throws {
        var s = try makeDemo()
        let fresh = Applier(cluster: s.cluster, connections: s.connections, state: nil)
        XCTAssertEqual(fresh.staleness(of: s.document, stateBefore: nil), [])

        // 1. cluster.yaml edited.
        let specURL = s.cluster.specFile
        let original = try String(contentsOf: specURL, encoding: .utf8)
        try write(original + "\n# edited\n", to: specURL)
        var edited = try ClusterLoader.load(s.cluster.directory.path)
        XCTAssertEqual(Applier(cluster: edited, connections: s.connections, state: nil)
            .staleness(of: s.document, stateBefore: nil), ["cluster.yaml changed since the plan was made"])
        try write(original, to: specURL)

        // 2. Policy edited.
        let policyText = try String(contentsOf: s.cluster.policyFile, encoding: .utf8)
        try write(policyText.replacingOccurrences(of: "maxMigrationsPerRun: 4", with: "maxMigrationsPerRun: 3"),
                  to: s.cluster.policyFile)
        edited = try ClusterLoader.load(s.cluster.directory.path)
        XCTAssertEqual(Applier(cluster: edited, connections: s.connections, state: nil)
            .staleness(of: s.document, stateBefore: nil), ["policy default changed"])
        try write(policyText, to: s.cluster.policyFile)
        s.cluster = try ClusterLoader.load(s.cluster.directory.path)

        // 3. state.json written by another run since the plan.
        let state = try StateFile(directory: s.cluster.directory).write(StateDocument(cluster: "demo"))
        let reasons = Applier(cluster: s.cluster, connections: s.connections, state: state)
            .staleness(of: s.document, stateBefore: state)
        XCTAssertEqual(reasons.count, 1)
        XCTAssertTrue(reasons[0].hasPrefix("state.json was created (lineage "), reasons[0])
        try FileManager.default.removeItem(at: StateFile(directory: s.cluster.directory).url)

        // 4. The fleet changed by hand: web2 moved pm2 -> pm3.
        _ = try s.connections.connection("pm2")!.migrateCold("web2", to: s.connections.connection("pm3")!)
        XCTAssertEqual(Applier(cluster: s.cluster, connections: s.connections, state: nil)
            .staleness(of: s.document, stateBefore: nil),
            ["the fleet changed: VMs moved, resized, started or stopped since the plan was made"])
    }

    func testFailedActionSkipsDependentsAndStateStaysTrue() throws {
        let s = try makeDemo()
        // Someone removes batch1 between plan and apply: its migration must fail, not invent a VM.
        let pm2 = s.connections.connection("pm2")!
        try pm2.destroy("batch1")
        try pm2.undefine("batch1")
        let applier = Applier(cluster: s.cluster, connections: s.connections, state: nil)
        let report = try applier.apply(s.document)
        XCTAssertFalse(report.succeeded)
        let migrate = try XCTUnwrap(s.document.actions.first { $0.kind == .migrate })
        let outcome = try XCTUnwrap(report.outcomes.first { $0.actionID == migrate.id })
        XCTAssertEqual(outcome.status, .failed)
        XCTAssertTrue(outcome.detail?.contains("batch1 is no longer on pm2") == true, outcome.detail ?? "")
        for dependent in s.document.actions where dependent.dependsOn.contains(migrate.id) {
            XCTAssertEqual(report.outcomes.first { $0.actionID == dependent.id }?.status, .skipped)
        }
        let state = try XCTUnwrap(try StateFile(directory: s.cluster.directory).read())
        XCTAssertEqual(state.lastPlan?.status, "failed")
        XCTAssertNil(state.inventory?.vms.first { $0.name == "batch1" }, "state must not claim batch1 exists")
        XCTAssertEqual(state.journal.last { $0.actionID == migrate.id }?.status, .failed)
    }

    func testUnreachableHostIsUnknownNeverEmpty() throws {
        let root = try temporaryDirectory(self)
        let dir = try copyBundledCluster("demo", into: root)
        try FileManager.default.removeItem(at: dir.appendingPathComponent("hosts/pm3.xml"))
        // Loading checks the node file; point pm3 at an unreachable daemon socket instead.
        let specURL = dir.appendingPathComponent("cluster.yaml")
        let spec = try String(contentsOf: specURL, encoding: .utf8).replacingOccurrences(
            of: "test:hosts/pm3.xml", with: "qemu+unix:///system?socket=\(root.path)/no-such.sock")
        try write(spec, to: specURL)
        let cluster = try ClusterLoader.load(dir.path)
        let connections = FleetConnections(cluster: cluster, timeout: .seconds(5))
        defer { connections.closeAll() }
        let snapshot = try Engine.observe(cluster, connections: connections, state: nil)
        let pm3 = try XCTUnwrap(snapshot.observation.hosts.first { $0.name == "pm3" })
        guard case .unknown(let reason) = pm3.status else { return XCTFail("pm3 should be unknown") }
        XCTAssertFalse(reason.isEmpty)
        let document = Engine.plan(cluster, snapshot: snapshot, state: nil)
        // batch2 lived on pm3: it must not be re-defined elsewhere just because pm3 did not answer.
        XCTAssertFalse(document.actions.contains { $0.vm == "batch2" && ($0.kind == .define || $0.kind == .start) },
                       "\(document.actions.map { "\($0.kind) \($0.vm)" })")
        XCTAssertEqual(document.hostsBefore.first { $0.name == "pm3" }?.status, "unknown")
    }
}

final class PlanIntegrityTests: XCTestCase {
    func testAHandEditedPlanIsRefused() throws {
        let dir = try temporaryDirectory(self)
        let cluster = try ClusterLoader.load(repositoryRoot.appendingPathComponent("Clusters/demo").path)
        let connections = FleetConnections(cluster: cluster)
        defer { connections.closeAll() }
        let document = Engine.plan(cluster, snapshot: try Engine.observe(cluster, connections: connections, state: nil),
                                   state: nil)
        let url = dir.appendingPathComponent("plan.json")
        try PlanStore.save(document, to: url)
        XCTAssertEqual(try PlanStore.load(url.path), document)

        // Redirect the migration to another host, keep the reviewed id.
        let text = try String(contentsOf: url, encoding: .utf8)
        try write(text.replacingOccurrences(of: "\"to\" : \"pm3\"", with: "\"to\" : \"pm1\""), to: url)
        XCTAssertThrowsError(try PlanStore.load(url.path)) { error in
            XCTAssertTrue("\(error)".contains("the plan was modified after it was made (its id is \(document.id!)"),
                          "\(error)")
        }
    }
}

/// Every action the libvirt test driver supports, planned and applied through the engine.
final class ActuationThroughEngineTests: XCTestCase {
    func testDefineStartResizeAndTuneAreAppliedOnTheTestDriver() throws {
        let root = try temporaryDirectory(self)
        let dir = try copyBundledCluster("demo", into: root)
        let specURL = dir.appendingPathComponent("cluster.yaml")
        var spec = try String(contentsOf: specURL, encoding: .utf8)
        // web1 is declared with 1 vCPU (it runs with 2): resize. Its memory limit shrinks to 1.5 GiB: tune.
        spec = spec.replacingOccurrences(of: """
              - name: web1
                vcpus: 2
            """, with: """
              - name: web1
                vcpus: 1
            """)
        spec = spec.replacingOccurrences(of: "cpu:    {reservation: 0.5, limit: 2, shares: high}\n      memory: {reservation: 1GiB, limit: 2GiB, shares: normal}",
                                         with: "cpu:    {reservation: 0.5, limit: 1, shares: high}\n      memory: {reservation: 1GiB, limit: 1536MiB, shares: normal}")
        // A VM declared but absent: defined from its template and started.
        spec += """
              - name: api1
                vcpus: 1
                memory: 512MiB
                template: templates/vm.xml
                resources: {memory: {reservation: 256MiB, limit: 512MiB}}

            """
        // Keep the declared VMs together (the groups section follows the VMs).
        let groups = "groups:\n  - {name: web-spread, vms: [web1, web2], rule: anti-affinity, enforcement: must}\n"
        spec = spec.replacingOccurrences(of: groups, with: "") + groups
        try write(spec, to: specURL)
        let cluster = try ClusterLoader.load(dir.path)
        let connections = FleetConnections(cluster: cluster)
        defer { connections.closeAll() }
        let snapshot = try Engine.observe(cluster, connections: connections, state: nil)
        let document = Engine.plan(cluster, snapshot: snapshot, state: nil)
        let kinds = Set(document.actions.map { "\($0.kind) \($0.vm)" })
        XCTAssertTrue(kinds.isSuperset(of: ["define api1", "start api1", "resize web1", "tune web1"]), "\(kinds)")

        let applier = Applier(cluster: cluster, connections: connections, state: nil)
        let report = try applier.apply(document)
        XCTAssertTrue(report.succeeded, "\(report.outcomes)")

        let target = try XCTUnwrap(document.actions.first { $0.kind == .define }?.to)
        let api1 = try connections.connection(target)!.domain(named: "api1")
        XCTAssertEqual(api1.state, .running)
        XCTAssertEqual(api1.memoryMiB, 512)
        XCTAssertEqual(api1.vcpus, 1)
        let web1 = try connections.connection("pm1")!.domain(named: "web1")
        XCTAssertEqual(web1.vcpus, 1)
        XCTAssertEqual(web1.memoryTune?.hardLimitMiB, 1536)
        XCTAssertEqual(web1.memoryTune?.softLimitMiB, 1024)

        // Converged: the next plan on the same fleet has nothing left to do for these VMs.
        let state = try StateFile(directory: cluster.directory).read()
        let next = Engine.plan(cluster, snapshot: try Engine.observe(cluster, connections: connections, state: state),
                               state: state)
        XCTAssertFalse(next.actions.contains { $0.vm == "api1" || ($0.vm == "web1" && $0.kind != .migrate) },
                       "\(next.actions.map { "\($0.kind) \($0.vm): \($0.reason)" })")
    }
}
