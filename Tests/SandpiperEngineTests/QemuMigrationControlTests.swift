import Foundation
import SandpiperEngine
import SandpiperLibvirt
import SandpiperModel
import SandpiperTestSupport
import XCTest

/// The policy's `migration:` settings reach libvirt on real daemons: while `apply` migrates, the source daemon
/// (its job statistics, read with virsh over the daemon's own socket) transfers at the policy's bandwidth; a budget far
/// too short for that bandwidth aborts the job, the failure is journaled with the reason, and the guest keeps
/// running on the source.
final class QemuMigrationControlTests: XCTestCase {
    func testPolicyBandwidthReachesLibvirtAndAnOverrunMigrationIsAbortedCleanly() throws {
        if let reason = QemuLab.unavailableReason() { throw XCTSkip(reason) }
        let lab = try QemuLab()
        var cleanup: [LibvirtConnection] = []
        defer { lab.teardown(domain: "tiny", connections: cleanup) }
        let (unixA, unixB) = try lab.startPair(
            hostUUIDs: ("aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa", "bbbbbbbb-2222-4222-8222-bbbbbbbbbbbb"), migrationPortMin: 50700)
        cleanup += [unixA, unixB]
        _ = try unixA.define(xml: QemuLab.tinyXML())
        try unixA.start("tiny")

        let root = try temporaryDirectory(self)
        try FileManager.default.createDirectory(at: root.appendingPathComponent("Policies"), withIntermediateDirectories: true)
        let policyURL = root.appendingPathComponent("Policies/default.yaml")
        let defaultPolicy = try String(contentsOf: repositoryRoot.appendingPathComponent("Policies/default.yaml"),
                                       encoding: .utf8)
        let dir = try lab.writeCluster(root: root)

        // 1. 8 Mbit/s = 1 MiB/s and a 1 ms budget per GiB (one GiB counted for the 64 MiB guest): the job is
        //    aborted at the first check; the failure is journaled and the guest stays where it was.
        try (defaultPolicy + "\nmigration: {bandwidth: 8Mbit, timeoutPerGiB: 1ms, maxDowntime: 50ms}\n")
            .write(to: policyURL, atomically: true, encoding: .utf8)
        var cluster = try ClusterLoader.load(dir.path)
        XCTAssertEqual(cluster.policy.migration.bandwidthMbps, 8)
        var connections = FleetConnections(cluster: cluster)
        var document = Engine.plan(cluster, snapshot: try Engine.observe(cluster, connections: connections, state: nil),
                                   state: nil)
        var move = try XCTUnwrap(document.actions.first { $0.kind == .migrate })
        let report = try Applier(cluster: cluster, connections: connections, state: nil).apply(document)
        connections.closeAll()
        XCTAssertFalse(report.succeeded)
        let outcome = try XCTUnwrap(report.outcomes.first { $0.actionID == move.id })
        XCTAssertEqual(outcome.status, .failed)
        XCTAssertTrue(outcome.detail?.contains("was aborted") == true, "\(outcome.detail ?? "")")
        XCTAssertEqual(try unixA.domain(named: "tiny").state, .running, "still running on the source")
        XCTAssertNil(try unixB.domainIfExists(named: "tiny"))
        let stateText = try String(contentsOf: StateFile(directory: dir).url, encoding: .utf8)
        XCTAssertTrue(stateText.contains("was aborted"), "journaled with the reason")

        // 2. The same cap with a budget that suffices: while apply migrates, the source daemon's job statistics
        //    (virsh domjobinfo over the daemon's own socket, not through Sandpiper) show QEMU moving data at
        //    about 1 MiB/s, far below loopback speed without a cap.
        try (defaultPolicy + "\nmigration: {bandwidth: 8Mbit, timeoutPerGiB: 240s}\n")
            .write(to: policyURL, atomically: true, encoding: .utf8)
        cluster = try ClusterLoader.load(dir.path)
        let state = try StateFile(directory: dir).read()
        connections = FleetConnections(cluster: cluster)
        defer { connections.closeAll() }
        document = Engine.plan(cluster, snapshot: try Engine.observe(cluster, connections: connections, state: state),
                               state: state)
        move = try XCTUnwrap(document.actions.first { $0.kind == .migrate })
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: Result<ApplyReport, Error>?
        let applier = Applier(cluster: cluster, connections: connections, state: state)
        let second = document
        Thread {
            result = Result { try applier.apply(second) }
            done.signal()
        }.start()
        var rates: [Double] = []
        var samples: [String] = []
        while done.wait(timeout: .now() + .milliseconds(10)) == .timedOut {
            guard let out = try? QemuLab.run("/usr/bin/virsh", ["-c", lab.uri("A"), "domjobinfo", "tiny"]),
                  let line = out.split(separator: "\n").first(where: { $0.hasPrefix("Memory bandwidth:") }) else { continue }
            samples.append(String(line))
            let fields = line.split(separator: " ")  // Memory bandwidth: 1.000 MiB/s
            guard fields.count >= 4, let value = Double(fields[2]) else { continue }
            let unit = [("B/s", 1.0 / 1_048_576), ("KiB/s", 1.0 / 1024), ("MiB/s", 1.0), ("GiB/s", 1024.0)]
                .first { $0.0 == fields[3] }?.1 ?? .infinity
            rates.append(value * unit)
        }
        let moved = try XCTUnwrap(result).get()
        XCTAssertTrue(moved.succeeded, "\(moved.outcomes)")
        XCTAssertEqual(try unixB.domain(named: "tiny").state, .running)
        XCTAssertFalse(rates.isEmpty, "the job was seen running")
        XCTAssertTrue(rates.allSatisfy { $0 <= 1.5 }, "QEMU kept to about 1 MiB/s: \(samples)")
        XCTAssertTrue(rates.contains { $0 > 0.2 }, "data moved at the capped rate: \(samples)")
    }
}
