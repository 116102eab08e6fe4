import Foundation
import SandpiperEngine
import SandpiperModel
import XCTest

/// Host power commands: run argv-only with a timeout, refused unless the policy allows them, output journaled,
/// and a failure leaves the host's recorded power state true.
final class PowerTests: XCTestCase {
    func testPowerCommandCapturesOutputAndTimesOut() throws {
        let ok = try PowerCommand(argv: ["/bin/sh", "-c", "echo Chassis Power is off; echo warn >&2"],
                                  timeoutSeconds: 5).run()
        XCTAssertTrue(ok.succeeded)
        XCTAssertTrue(ok.output.contains("Chassis Power is off") && ok.output.contains("warn"), ok.output)
        XCTAssertEqual(PowerCommand.poweredOn(statusOutput: ok.output), false)
        XCTAssertEqual(PowerCommand.poweredOn(statusOutput: "Chassis Power is on\n"), true)
        XCTAssertNil(PowerCommand.poweredOn(statusOutput: "error"))
        let failed = try PowerCommand(argv: ["/bin/sh", "-c", "exit 3"], timeoutSeconds: 5).run()
        XCTAssertEqual(failed.exitCode, 3)
        let start = Date()
        let slow = try PowerCommand(argv: ["/bin/sleep", "10"], timeoutSeconds: 0.5).run()
        XCTAssertTrue(slow.timedOut)
        XCTAssertLessThan(Date().timeIntervalSince(start), 5)
        let long = try PowerCommand(argv: ["/bin/sh", "-c", "head -c 10000 /dev/zero | tr '\\\\0' x"],
                                    timeoutSeconds: 5).run()
        XCTAssertTrue(long.output.hasSuffix("[output truncated]"))
        XCTAssertLessThan(long.output.count, PowerCommand.outputLimit + 40)
        XCTAssertThrowsError(try PowerCommand(argv: ["true"], timeoutSeconds: 1).run())
    }

    /// Two test-driver hosts: pm1 runs vm1, pm2 is empty and declares `power` with the given commands.
    func makeCluster(off: [String], on: [String] = ["/bin/true"], status: [String]? = nil,
                     powerCommands: String = "allow", timeout: String = "5s",
                     pm2URI: String = "test:hosts/pm2.xml") throws -> LoadedCluster {
        let root = try temporaryDirectory(self)
        let dir = root.appendingPathComponent("Clusters/p")
        func list(_ a: [String]) -> String { "[" + a.map { "\"\($0)\"" }.joined(separator: ", ") + "]" }
        try write("""
        apiVersion: sandpiper/v1
        kind: Cluster
        name: p
        policy: power
        telemetry: {source: trace, trace: trace.csv, interval: 10s}
        hosts:
          - {name: pm1, uri: "test:hosts/pm1.xml"}
          - name: pm2
            uri: "\(pm2URI)"
            power: {on: \(list(on)), off: \(list(off))\(status.map { ", status: \(list($0))" } ?? "")}
        vms:
          - {name: vm1, vcpus: 1, memory: 1GiB}
        """, to: dir.appendingPathComponent("cluster.yaml"))
        try write("""
        apiVersion: sandpiper/v1
        kind: Policy
        consolidation: {enabled: true, powerCommands: \(powerCommands), commandTimeout: \(timeout)}
        """, to: root.appendingPathComponent("Policies/power.yaml"))
        try write("time_s,vm,cpu_cores,net_mbps,mem_mib,swap_kbps,guest_free_mib\n0,vm1,0.1,1,512,,\n",
                  to: dir.appendingPathComponent("trace.csv"))
        let node = { (domains: String) in """
            <?xml version='1.0'?>
            <node><cpu><mhz>2400</mhz><model>x86_64</model><nodes>1</nodes><sockets>1</sockets><cores>8</cores>
            <threads>1</threads><active>8</active></cpu><memory>33554432</memory>\(domains)</node>
            """ }
        try write(node("""
            <domain type='test'><name>vm1</name><uuid>11111111-0000-4000-8000-000000000001</uuid>
            <memory unit='MiB'>1024</memory><currentMemory unit='MiB'>1024</currentMemory><vcpu>1</vcpu>
            <os><type arch='x86_64'>hvm</type></os></domain>
            """), to: dir.appendingPathComponent("hosts/pm1.xml"))
        try write(node(""), to: dir.appendingPathComponent("hosts/pm2.xml"))
        return try ClusterLoader.load(dir.path)
    }

    /// A real (empty) plan of the cluster with host actions appended (decoded through the JSON contract).
    func document(_ cluster: LoadedCluster, _ connections: FleetConnections, state: StateDocument?,
                  _ actions: [(kind: String, host: String)]) throws -> PlanDocument {
        let snapshot = try Engine.observe(cluster, connections: connections, state: state)
        var doc = Engine.plan(cluster, snapshot: snapshot, state: state)
        XCTAssertTrue(doc.actions.isEmpty)
        for (i, a) in actions.enumerated() {
            let json = """
            {"id": "\(i + 1)", "kind": "\(a.kind)", "vm": "", "host": "\(a.host)", "dependsOn": \(i == 0 ? "[]" : "[\"\(i)\"]"),
             "parameters": {}, "reason": "test"}
            """
            doc.actions.append(try JSONDecoder().decode(PlanDocument.Action.self, from: Data(json.utf8)))
        }
        return doc
    }

    func status(_ state: StateDocument, _ host: String) -> HostObservation.Status? {
        state.inventory?.hosts.first { $0.name == host }?.status
    }

    func testPowerOffRunsTheCommandJournalsItsOutputAndRecordsStandby() throws {
        let cluster = try makeCluster(off: ["/bin/sh", "-c", "echo powering off pm2"])
        let connections = FleetConnections(cluster: cluster)
        defer { connections.closeAll() }
        let applier = Applier(cluster: cluster, connections: connections, state: nil)
        let doc = try document(cluster, connections, state: nil, [("drain", "pm2"), ("power-off", "pm2")])
        let report = try applier.apply(doc)
        XCTAssertTrue(report.succeeded, "\(report.outcomes)")
        let saved = try XCTUnwrap(try StateFile(directory: cluster.directory).read())
        XCTAssertEqual(status(saved, "pm2"), .standby)
        let entry = try XCTUnwrap(saved.journal.last { $0.actionID == "2" && $0.status == .done })
        XCTAssertEqual(entry.output?.trimmingCharacters(in: .whitespacesAndNewlines), "powering off pm2")
        // The next observation does not contact pm2 and does not call it unknown.
        let next = connections.inventory(previous: saved.inventory, now: 10)
        XCTAssertEqual(next.hosts.first { $0.name == "pm2" }?.status, .standby)
        XCTAssertTrue(next.unknownHosts.isEmpty)
        XCTAssertFalse(applier.staleness(of: try document(cluster, connections, state: saved, []), stateBefore: saved)
            .contains { $0.contains("unreachable") })
        // A plan made while pm2 was up is stale now.
        let before = try document(cluster, FleetConnections(cluster: cluster), state: nil, [])
        XCTAssertTrue(applier.staleness(of: before, stateBefore: saved).contains("host pm2 was up when planned and is standby now"))
        // A fresh process reads standby from state.json.
        let other = FleetConnections(cluster: cluster)
        defer { other.closeAll() }
        XCTAssertEqual(other.inventory(previous: saved.inventory, now: 20).hosts.first { $0.name == "pm2" }?.status,
                       .standby)

        // Power it on again.
        let on = Applier(cluster: cluster, connections: connections, state: saved)
        let r2 = try on.apply(try document(cluster, connections, state: saved, [("power-on", "pm2")]))
        XCTAssertTrue(r2.succeeded, "\(r2.outcomes)")
        XCTAssertEqual(status(on.state, "pm2"), .up)
    }

    func testPowerCommandsAreRefusedUnlessThePolicyAllowsThem() throws {
        let cluster = try makeCluster(off: ["/bin/true"], powerCommands: "deny")
        let connections = FleetConnections(cluster: cluster)
        defer { connections.closeAll() }
        let applier = Applier(cluster: cluster, connections: connections, state: nil)
        // Refused before anything runs: no VM is moved for a power-off that could not happen.
        XCTAssertThrowsError(try applier.apply(try document(cluster, connections, state: nil, [("power-off", "pm2")]))) {
            let text = "\($0)"
            XCTAssertTrue(text.contains("1 host power action (pm2)") && text.contains("powerCommands: deny")
                          && text.contains("nothing was applied"), text)
        }
        XCTAssertTrue(applier.state.journal.isEmpty)
        XCTAssertNil(try StateFile(directory: cluster.directory).read(), "nothing ran, nothing was written")
    }

    func testFailedPowerCommandIsJournaledAndLeavesTheRecordedStateTrue() throws {
        // The off command fails; the status command says the host is still on.
        let cluster = try makeCluster(off: ["/bin/sh", "-c", "echo BMC unreachable >&2; exit 3"],
                                      status: ["/bin/echo", "Chassis Power is on"])
        let connections = FleetConnections(cluster: cluster)
        defer { connections.closeAll() }
        let applier = Applier(cluster: cluster, connections: connections, state: nil)
        let report = try applier.apply(try document(cluster, connections, state: nil, [("power-off", "pm2")]))
        XCTAssertFalse(report.succeeded)
        let saved = try XCTUnwrap(try StateFile(directory: cluster.directory).read())
        let entry = try XCTUnwrap(saved.journal.last { $0.status == .failed })
        XCTAssertTrue(entry.error?.contains("exited with status 3") == true, entry.error ?? "")
        XCTAssertTrue(entry.error?.contains("reports the host on") == true, entry.error ?? "")
        XCTAssertTrue(entry.output?.contains("BMC unreachable") == true)
        XCTAssertEqual(status(saved, "pm2"), .up)
        XCTAssertEqual(saved.lastPlan?.status, "failed")

        // A command that hangs is stopped at the timeout; without a status command the state is unchanged.
        let slow = try makeCluster(off: ["/bin/sleep", "30"], timeout: "1s")
        let c2 = FleetConnections(cluster: slow)
        defer { c2.closeAll() }
        let a2 = Applier(cluster: slow, connections: c2, state: nil)
        let r2 = try a2.apply(try document(slow, c2, state: nil, [("power-off", "pm2")]))
        XCTAssertTrue(r2.outcomes[0].detail?.contains("timed out after 1s") == true, r2.outcomes[0].detail ?? "")
        XCTAssertEqual(status(a2.state, "pm2"), .up)
    }

    func testDrainRefusesAHostThatStillRunsVMs() throws {
        let cluster = try makeCluster(off: ["/bin/true"])
        let connections = FleetConnections(cluster: cluster)
        defer { connections.closeAll() }
        let applier = Applier(cluster: cluster, connections: connections, state: nil)
        let report = try applier.apply(try document(cluster, connections, state: nil, [("drain", "pm1"), ("power-off", "pm1")]))
        XCTAssertEqual(report.outcomes.map(\.status), [.failed, .skipped])
        XCTAssertTrue(report.outcomes[0].detail?.contains("pm1 still holds vm1") == true)
    }

    /// Sustained-low bookkeeping: recorded before planning, carried forward while the host stays low.
    func testLowSinceIsRecordedKeptAndCleared() throws {
        let cluster = try makeCluster(off: ["/bin/true"])
        let connections = FleetConnections(cluster: cluster)
        defer { connections.closeAll() }
        var state = StateDocument(cluster: "p")
        var snapshot = try Engine.observe(cluster, connections: connections, state: nil)
        XCTAssertTrue(Engine.recordLowSince(cluster, snapshot: &snapshot, state: &state))
        let t0 = snapshot.observation.now
        XCTAssertEqual(snapshot.observation.hosts.map { $0.lowSince }, [t0, t0], "both hosts are low")
        XCTAssertEqual(state.inventory?.hosts.map { $0.lowSince }, [t0, t0])
        // Later: the inventory carries lowSince forward, recording again changes nothing.
        var later = try Engine.observe(cluster, connections: connections, state: state)
        XCTAssertEqual(later.observation.hosts.map { $0.lowSince }, [t0, t0], "carried forward from the state")
        XCTAssertFalse(Engine.recordLowSince(cluster, snapshot: &later, state: &state))
        XCTAssertEqual(later.observation.hosts.map { $0.lowSince }, [t0, t0])
        // A host that is not low loses it.
        var busy = cluster
        busy.policy.consolidation.lowUtilization = 0.001
        busy.policy.consolidation.targetUtilization = 0.6
        var snap2 = later
        XCTAssertTrue(Engine.recordLowSince(busy, snapshot: &snap2, state: &state))
        XCTAssertEqual(snap2.observation.hosts.map { $0.lowSince }, [nil, t0], "pm1 runs vm1 (above 0.1%), pm2 is empty")
    }

    /// An unreachable host whose status command says "off" is standby (not unknown) — unless it held VMs when last
    /// seen: then it stays unknown, so its VMs are never defined elsewhere.
    func testStatusCommandTellsStandbyFromUnknown() throws {
        let cluster = try makeCluster(off: ["/bin/true"], status: ["/bin/echo", "Chassis Power is off"],
                                      pm2URI: "qemu+unix:///system?socket=/nonexistent/libvirt-sock")
        let connections = FleetConnections(cluster: cluster, timeout: .seconds(5))
        defer { connections.closeAll() }
        let first = connections.inventory(now: 0)
        XCTAssertEqual(first.hosts.first { $0.name == "pm2" }?.status, .standby)
        XCTAssertTrue(first.unknownHosts.isEmpty)

        var previous = Observation(inventory: first, samples: [:], now: 0, intervalSeconds: 10)
        previous.hosts = previous.hosts.map { var h = $0; h.status = .up; return h }
        previous.vms.append(VMObservation(name: "old", host: "pm2", vcpus: 1, memoryMiB: 512))
        let other = FleetConnections(cluster: cluster, timeout: .seconds(5))
        defer { other.closeAll() }
        let second = other.inventory(previous: previous, now: 10)
        guard case .unknown = second.hosts.first(where: { $0.name == "pm2" })?.status else {
            return XCTFail("pm2 held a VM: unknown, not standby (\(second.hosts))")
        }
    }

    /// Power-on waits (up to the command timeout) for libvirt on the host; a host that does not answer yet is
    /// still recorded on, with a note.
    func testPowerOnWaitsForLibvirtThenReportsIt() throws {
        let cluster = try makeCluster(off: ["/bin/true"], timeout: "1s",
                                      pm2URI: "qemu+unix:///system?socket=/nonexistent/libvirt-sock")
        let connections = FleetConnections(cluster: cluster, timeout: .seconds(5))
        defer { connections.closeAll() }
        var state = StateDocument(cluster: "p")
        var inv = Observation(inventory: connections.inventory(now: 0), samples: [:], now: 0, intervalSeconds: 10)
        inv.hosts = inv.hosts.map { var h = $0; if h.name == "pm2" { h.status = .standby }; return h }
        state.inventory = inv
        let applier = Applier(cluster: cluster, connections: connections, state: state)
        let report = try applier.apply(try document(cluster, connections, state: state, [("power-on", "pm2")]))
        XCTAssertTrue(report.succeeded, "\(report.outcomes)")
        XCTAssertTrue(report.outcomes[0].detail?.contains("libvirt on pm2 does not answer yet") == true,
                      report.outcomes[0].detail ?? "")
        XCTAssertNotEqual(applier.state.inventory?.hosts.first { $0.name == "pm2" }?.status, .standby)
    }
}
