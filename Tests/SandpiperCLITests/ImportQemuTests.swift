import Foundation
import XCTest
import SandpiperLibvirt
import SandpiperModel
import SandpiperTestSupport

/// `sandpiper import` against two real libvirtd (QEMU) daemons: one guest running on B, one only defined on A.
/// The spec declares both with what the daemons report, validates, and its plan defines, starts, stops and
/// undefines nothing; the defined-only guest is reported as the one thing the spec cannot say.
final class ImportQemuTests: XCTestCase {
    func testImportTwoRealDaemons() throws {
        if let reason = QemuLab.unavailableReason() { throw XCTSkip(reason) }
        let lab = try QemuLab()
        var cleanup: [LibvirtConnection] = []
        // The running guest goes first (destroy, then its pidfile), while its daemon is still up.
        defer {
            for c in cleanup { try? c.undefine("idle") }
            lab.teardown(domain: "busy", connections: cleanup)
        }
        let (a, b) = try lab.startPair(
            hostUUIDs: ("77777777-7777-4777-8777-777777777777", "88888888-8888-4888-8888-888888888888"), migrationPortMin: 50100)
        cleanup += [a, b]
        _ = try a.define(xml: QemuLab.tinyXML(name: "idle"))
        _ = try b.define(xml: QemuLab.tinyXML(name: "busy"))
        try b.start("busy")
        let (infoA, infoB) = (try a.hostInfo(), try b.hostInfo())
        // The host's own counters (telemetry.hostLoad) read through the real daemon, checked against the kernel.
        let node = try a.nodeStats()
        XCTAssertNotNil(node.busyNs)
        let memTotal = try String(contentsOf: URL(fileURLWithPath: "/proc/meminfo"), encoding: .utf8)
            .split(separator: "\n").first { $0.hasPrefix("MemTotal:") }?
            .split(separator: " ").dropFirst().first.flatMap { UInt64($0) }
        XCTAssertEqual(node.memoryTotalKiB, memTotal)
        XCTAssertNotNil(node.memoryUsedMiB)
        let busy = try b.domain(named: "busy")

        let root = try CLI.sandbox(self)
        let run = try CLI.run(["import", lab.uri("A"), lab.uri("B"), "--name", "adopted"], in: root)
        XCTAssertEqual(run.status, 0, run.stderr)
        let dir = root.appendingPathComponent("Clusters/adopted")
        let file = dir.appendingPathComponent("cluster.yaml")
        let (spec, _) = try SpecDecoder.decodeCluster(String(contentsOf: file, encoding: .utf8), file: file.path)
        XCTAssertEqual(spec.hosts.count, 2)
        XCTAssertEqual(spec.hosts.map(\.uri), [lab.uri("A"), lab.uri("B")])
        XCTAssertEqual(spec.hosts[1].name, spec.hosts[0].name + "-2", "same machine, same hostname: suffixed")
        XCTAssertEqual(spec.hosts.map(\.capacity.cpus), [Double(infoA.cpus), Double(infoB.cpus)])
        XCTAssertEqual(spec.hosts.map(\.capacity.memoryMiB), [Double(infoA.memoryMiB), Double(infoB.memoryMiB)])
        XCTAssertEqual(spec.vms.map(\.name), ["busy", "idle"])
        XCTAssertEqual(spec.vm(named: "busy")?.vcpus, busy.vcpus)
        XCTAssertEqual(spec.vm(named: "busy")?.memoryMiB, Double(busy.maxMemoryMiB))
        XCTAssertTrue(run.stdout.contains("idle is shutoff on \(spec.hosts[0].name)"), run.stdout)

        XCTAssertEqual(try CLI.run(["validate", "Clusters/adopted"], in: root).status, 0)
        let plan = try CLI.run(["plan", "Clusters/adopted", "--json", "--samples", "1", "--interval", "0.5"], in: root)
        XCTAssertEqual(plan.status, 0, plan.stderr)
        let doc = try JSONSerialization.jsonObject(with: Data(plan.stdout.utf8)) as! [String: Any]
        let kinds = (doc["actions"] as! [[String: Any]]).compactMap { $0["kind"] as? String }
        XCTAssertTrue(Set(kinds).isDisjoint(with: ["define", "start", "stop", "undefine"]), "\(kinds)")
        let drift = (doc["drift"] as! [[String: Any]]).compactMap { $0["vm"] as? String }
        XCTAssertEqual(drift, ["idle"], "only the defined-but-stopped guest, as import reported")
    }
}
