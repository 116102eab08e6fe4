import Foundation
import SandpiperTestSupport
import XCTest

/// `observe --json` shows each VM's disks and what a move of it copies (issue 12, item 4). The demo cluster's pm1
/// with a file disk on web1 and db1; web1 declared `storage: local`, db1 left to the default (test-driver hosts:
/// shared). `plan` on the same cluster still works, and the state file's inventory carries the disks.
final class DisksCLITests: XCTestCase {
    func testObserveShowsDisksAndTheBytesAMoveCopies() throws {
        let root = try CLI.sandbox(self)
        let dir = root.appendingPathComponent("Clusters/demo")
        let pm1 = dir.appendingPathComponent("hosts/pm1.xml")
        let xml = try String(contentsOf: pm1, encoding: .utf8).replacingOccurrences(of: "</domain>", with:
            "<devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/images/d.qcow2'/><target dev='vda'/></disk></devices></domain>")
        try xml.write(to: pm1, atomically: true, encoding: .utf8)
        let yamlURL = dir.appendingPathComponent("cluster.yaml")
        let yaml = try String(contentsOf: yamlURL, encoding: .utf8)
        XCTAssertTrue(yaml.contains("  - name: web1\n"), yaml)
        try yaml.replacingOccurrences(of: "  - name: web1\n", with: "  - name: web1\n    storage: local\n")
            .write(to: yamlURL, atomically: true, encoding: .utf8)

        let run = try CLI.run(["observe", dir.path, "--json"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let doc = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        let vms = try XCTUnwrap(doc["vms"] as? [[String: Any]])
        func vm(_ name: String) throws -> [String: Any] { try XCTUnwrap(vms.first { $0["name"] as? String == name }) }
        let allocation = try virshAllocation()
        let webDisks = try XCTUnwrap(try vm("web1")["disks"] as? [[String: Any]])
        XCTAssertEqual(webDisks.count, 1)
        XCTAssertEqual(webDisks[0]["target"] as? String, "vda")
        XCTAssertEqual(webDisks[0]["source"] as? String, "/images/d.qcow2")
        XCTAssertEqual(webDisks[0]["format"] as? String, "qcow2")
        XCTAssertEqual(webDisks[0]["storage"] as? String, "local")
        XCTAssertEqual(webDisks[0]["allocationBytes"] as? Double, allocation)
        XCTAssertEqual(try vm("web1")["diskCopyBytes"] as? Double, allocation)
        let dbDisks = try XCTUnwrap(try vm("db1")["disks"] as? [[String: Any]])
        XCTAssertEqual(dbDisks[0]["storage"] as? String, "shared", "test-driver disks default to shared")
        XCTAssertNil(try vm("db1")["diskCopyBytes"], "nothing to copy")
        XCTAssertNil(try vm("web2")["disks"], "no disks: no key")

        let state = try String(contentsOf: dir.appendingPathComponent("state.json"), encoding: .utf8)
        XCTAssertTrue(state.contains("\"diskCopyBytes\""), "the inventory in state.json carries the disks")
        XCTAssertEqual(try CLI.run(["plan", dir.path, "--json"]).status, 0)
    }

    /// What the test driver reports as any disk's allocation, read with virsh.
    func virshAllocation() throws -> Double {
        try Double(XCTUnwrap(VirshBlockInfo.read()["Allocation"]))
    }
}
