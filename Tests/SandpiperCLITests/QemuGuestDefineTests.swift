import Foundation
import SandpiperLibvirt
import SandpiperTestSupport
import XCTest

/// `sandpiper apply` defines and starts a real Linux guest from a template on real daemons (shared lab), then
/// moves it live when its pin changes. In session mode libvirt refuses `<cputune>`/`<memtune>` at start ("CPU
/// tuning is not available in session mode"): apply writes only what the host takes and reports the rest.
/// In root mode (cgroups) the entitlements are written and in effect.
final class QemuGuestDefineTests: XCTestCase {
    func testSessionDaemonDefineStartThenRepinMovesLive() throws {
        if let reason = LinuxGuest.unavailableReason() { throw XCTSkip(reason) }
        let shared = try SharedQemuLab.get(.session)
        let vm = "e2e-tiny"
        shared.removeGuests([vm])
        defer { shared.removeGuests([vm]) }
        let root = try CLI.sandbox(self)
        let cluster = try writeCluster(root: root, shared: shared, vm: vm, host: "a")

        let first = try CLI.run(["apply", "Clusters/e2e", "--auto-approve", "--json"], in: root, timeout: 180)
        XCTAssertEqual(first.status, 0, first.stdout + first.stderr)
        let outcomes = try applyOutcomes(first.stdout)
        XCTAssertEqual(outcomes.map { $0["status"] as? String }, ["done", "done"], "define + start: \(outcomes)")
        let define = try XCTUnwrap(outcomes.first { ($0["summary"] as? String ?? "").contains("define") })
        XCTAssertTrue((define["detail"] as? String ?? "").contains("not written: <cputune> shares"),
                      "the refused knob is reported: \(define)")
        XCTAssertEqual(try shared.a.domain(named: vm).state, .running)
        let xml = try shared.a.domainXML(vm)
        XCTAssertFalse(xml.contains("<cputune"), xml)
        XCTAssertTrue(xml.contains("<stats period='2'/>"), "defined with a balloon stats period: \(xml)")
        // It is a real guest, booted: its /init answers on the console.
        let console = try LinuxGuest.waitUntilReady(shared.a, vm)
        let uptimeBefore = try uptime(console.command("stat", answerPrefix: "SP stat"))
        console.close()

        // Re-pin to b: a live migration; the guest keeps running (its uptime goes on) on b and is gone from a.
        try String(contentsOf: cluster, encoding: .utf8).replacingOccurrences(of: "placement: {host: a}", with: "placement: {host: b}")
            .write(to: cluster, atomically: true, encoding: .utf8)
        let second = try CLI.run(["apply", "Clusters/e2e", "--auto-approve", "--json"], in: root, timeout: 180)
        XCTAssertEqual(second.status, 0, second.stdout + second.stderr)
        let moved = try applyOutcomes(second.stdout)
        XCTAssertEqual(moved.map { $0["summary"] as? String ?? "" }.filter { $0.contains("migrate") }.count, 1, "\(moved)")
        XCTAssertTrue(moved.allSatisfy { $0["status"] as? String == "done" && $0["detail"] == nil }, "live, no fallback: \(moved)")
        XCTAssertEqual(try shared.b.domain(named: vm).state, .running)
        XCTAssertNil(try shared.a.domainIfExists(named: vm))
        let uptimeAfter = try uptime(LinuxGuest.command(shared.b, vm, "stat"))
        XCTAssertGreaterThan(uptimeAfter, uptimeBefore, "the same guest, not a fresh boot")

        let plan = try CLI.run(["plan", "Clusters/e2e", "--detailed-exitcode"], in: root)
        XCTAssertEqual(plan.status, 0, "converged: \(plan.stdout + plan.stderr)")
    }

    func testRootDaemonDefineWritesEntitlementsThatTakeEffect() throws {
        if let reason = LinuxGuest.unavailableReason() { throw XCTSkip(reason) }
        let shared = try SharedQemuLab.get(.root)
        let vm = "root-tiny"
        shared.removeGuests([vm])
        defer { shared.removeGuests([vm]) }
        let root = try CLI.sandbox(self)
        _ = try writeCluster(root: root, shared: shared, vm: vm, host: "a", resources: "resources: {cpu: {shares: high}}")

        let run = try CLI.run(["apply", "Clusters/e2e", "--auto-approve", "--json"], in: root, timeout: 180)
        XCTAssertEqual(run.status, 0, run.stdout + run.stderr)
        let outcomes = try applyOutcomes(run.stdout)
        XCTAssertTrue(outcomes.allSatisfy { $0["status"] as? String == "done" && $0["detail"] == nil }, "\(outcomes)")
        XCTAssertTrue(try shared.a.domainXML(vm).contains("<shares>2000</shares>"))
        // In effect: the cgroup's cpu_shares as libvirt's scheduler reports them for the running guest.
        XCTAssertEqual(try shared.a.domain(named: vm).cpuTune?.shares, 2000)
        XCTAssertNotNil(try LinuxGuest.waitUntilReady(shared.a, vm))
    }

    private func writeCluster(root: URL, shared: SharedQemuLab, vm: String, host: String,
                              resources: String? = nil) throws -> URL {
        let resources = resources.map { ", " + $0 } ?? ""
        let dir = try LabCluster.write(
            root: root, name: "e2e", hosts: [("a", shared.uri("A")), ("b", shared.uri("B"))],
            vms: ["{name: \(vm), vcpus: 1, memory: 512MiB, template: templates/guest.xml, placement: {host: \(host)}\(resources)}"],
            trace: [.init(vm)])
        // The guest's own XML as the template; Sandpiper fills in name, uuid, vCPUs, memory and entitlements.
        // Its balloon has no stats period: define adds one.
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("templates"), withIntermediateDirectories: true)
        try LinuxGuest.xml(name: "NAME", uuid: "00000000-0000-4000-8000-000000000000", statsPeriod: 0)
            .write(to: dir.appendingPathComponent("templates/guest.xml"), atomically: true, encoding: .utf8)
        return dir.appendingPathComponent("cluster.yaml")
    }

    private func applyOutcomes(_ json: String) throws -> [[String: Any]] {
        let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        return object?["outcomes"] as? [[String: Any]] ?? []
    }

    private func uptime(_ statLine: String) throws -> Double {
        let r = try XCTUnwrap(statLine.range(of: "uptime="), statLine)
        return try XCTUnwrap(Double(statLine[r.upperBound...].prefix { $0.isNumber || $0 == "." }), statLine)
    }
}
