import Foundation
import SandpiperEngine
import SandpiperLibvirt
import SandpiperModel
import XCTest

/// Load outside the VMs: `@host` rows in traces (optional, kept out of the VM list and of state.json) and the
/// arithmetic on the hosts' own counters.
final class HostLoadTests: XCTestCase {
    func testTraceHostRowsReachTheObservationButNotTheState() throws {
        let root = try temporaryDirectory(self).appendingPathComponent("repo")
        let cluster = try copyBundledCluster("demo", into: root)
        let traceURL = cluster.appendingPathComponent("traces/demo.csv")
        let original = try String(contentsOf: traceURL, encoding: .utf8)
        let times = Set(original.split(separator: "\n").dropFirst().compactMap { $0.split(separator: ",").first })
            .compactMap { Double($0) }.sorted()
        var text = original.hasSuffix("\n") ? original : original + "\n"
        for t in times { text += "\(Units.trim(t)),@pm3,1.5,0,3072,,\n" }
        try write(text, to: traceURL)

        let trace = try Trace.parse(text, file: "demo.csv")
        XCTAssertFalse(trace.vmNames.contains { $0.hasPrefix("@") }, "host rows are not VMs")
        XCTAssertEqual(try Trace.parse(original, file: "demo.csv").vmNames, trace.vmNames)

        let loaded = try ClusterLoader.load(cluster.path)
        let connections = FleetConnections(cluster: loaded, readOnly: true)
        defer { connections.closeAll() }
        let snapshot = try Engine.observe(loaded, connections: connections, state: nil)
        let pm3 = try XCTUnwrap(snapshot.observation.hosts.first { $0.name == "pm3" })
        XCTAssertEqual(pm3.overhead.count, loaded.policy.window.n)
        XCTAssertEqual(pm3.overhead.last, Sample(cpu: 1.5, netMbps: 0, memMiB: 3072))
        XCTAssertTrue(snapshot.observation.hosts.first { $0.name == "pm1" }?.overhead.isEmpty ?? false)
        var state = StateDocument(cluster: "demo")
        state.record(snapshot.observation)
        let json = String(decoding: try JSONEncoder().encode(state), as: UTF8.self)
        XCTAssertFalse(json.contains("overhead"), "sample windows stay out of state.json")

        // A host row missing an interval is an error, like a VM's.
        let short = text.split(separator: "\n").dropLast().joined(separator: "\n") + "\n"
        XCTAssertThrowsError(try Trace.parse(short, file: "demo.csv")) { e in
            XCTAssertTrue("\(e)".contains("@pm3"), "\(e)")
        }
    }

    func testOverheadIsBusyCoresAndUsedMemoryMinusTheVMs() {
        let t0 = NodeStats(busyNs: 10_000_000_000, memoryTotalKiB: 16 << 20, memoryFreeKiB: 8 << 20,
                           memoryBuffersKiB: 1 << 20, memoryCachedKiB: 2 << 20, timestampNs: 1_000_000_000)
        var t1 = t0
        t1.busyNs = 13_000_000_000   // 3 s of CPU in 2 s: 1.5 cores busy
        t1.timestampNs = 3_000_000_000
        XCTAssertEqual(t1.memoryUsedMiB, 5 * 1024)
        let o = NodeStats.overhead(previous: t0, current: t1, vmCores: 1.0, vmMemoryMiB: 4096)
        XCTAssertEqual(o?.cpu ?? -1, 0.5, accuracy: 1e-9)
        XCTAssertEqual(o?.memMiB ?? -1, 1024, accuracy: 1e-9)
        XCTAssertNil(NodeStats.overhead(previous: nil, current: t1, vmCores: 0, vmMemoryMiB: 0), "first reading primes")
        XCTAssertEqual(NodeStats.overhead(previous: t0, current: t1, vmCores: 4, vmMemoryMiB: 9999)?.cpu, 0,
                       "never negative")
    }
}
