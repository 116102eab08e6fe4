import Foundation
import SandpiperEngine
import SandpiperSimulation
import SandpiperModel
import SandpiperTestSupport
import XCTest

/// `simulate` counts local disk bytes in a migration's time (issue 12, item 4): paper-3pm with a file disk on every
/// VM. Declared `storage: local`, each move takes (RAM + the disk's allocation) / bandwidth; the same disks left at
/// the test driver's default (shared) take RAM / bandwidth as before.
final class SimulateDiskTests: XCTestCase {
    /// paper-3pm copied under a temporary root, each test-driver domain given a file disk vda; hosts
    /// `storage: local` when `local`.
    func cluster(local: Bool) throws -> LoadedCluster {
        let root = try temporaryDirectory(self)
        let fm = FileManager.default
        try fm.createDirectory(at: root.appendingPathComponent("Clusters"), withIntermediateDirectories: true)
        try fm.copyItem(at: repositoryRoot.appendingPathComponent("Policies"), to: root.appendingPathComponent("Policies"))
        let dir = root.appendingPathComponent("Clusters/paper-3pm")
        try fm.copyItem(at: repositoryRoot.appendingPathComponent("Clusters/paper-3pm"), to: dir)
        for h in ["pm1", "pm2", "pm3"] {
            let url = dir.appendingPathComponent("hosts/\(h).xml")
            let xml = try String(contentsOf: url, encoding: .utf8).replacingOccurrences(of: "</domain>", with:
                "<devices><disk type='file' device='disk'><source file='/images/d.qcow2'/><target dev='vda'/></disk></devices></domain>")
            try xml.write(to: url, atomically: true, encoding: .utf8)
        }
        if local {
            let url = dir.appendingPathComponent("cluster.yaml")
            let yaml = try String(contentsOf: url, encoding: .utf8)
                .replacingOccurrences(of: "network: 1Gbit}}", with: "network: 1Gbit}, storage: local}")
            XCTAssertEqual(yaml.components(separatedBy: "storage: local").count, 4)
            try yaml.write(to: url, atomically: true, encoding: .utf8)
        }
        return try ClusterLoader.load(dir.path)
    }

    /// The allocation the test driver reports for any disk, read with virsh (not through Sandpiper).
    func testDriverAllocation() throws -> Double {
        try Double(XCTUnwrap(VirshBlockInfo.read()["Allocation"]))
    }

    func testMigrationTimeCountsLocalDiskBytes() throws {
        let bandwidth = 1_000_000.0  // Mbit/s: the test driver's 1 TiB disks then copy in seconds
        let options = SimulationOptions(bandwidthMbps: bandwidth)
        let diskMiB = try testDriverAllocation() / 1_048_576
        XCTAssertGreaterThan(diskMiB, 0)
        for local in [false, true] {
            let c = try cluster(local: local)
            let r = try Simulator(cluster: c, options: options).run()
            let moves = r.actions.filter { $0.kind == "migrate" && $0.status == "done" }
            XCTAssertFalse(moves.isEmpty, "local \(local): something moved")
            for m in moves {
                let ram = try XCTUnwrap(c.spec.vm(named: m.vm)).memoryMiB
                let expected = (ram + (local ? diskMiB : 0)) * 8 * 1.048576 / bandwidth
                XCTAssertEqual(m.finishedAt - m.startedAt, expected, accuracy: 0.01,
                               "local \(local): \(m.vm) moves \(ram) MiB of RAM\(local ? " + its disk" : "")")
            }
        }
    }
}
