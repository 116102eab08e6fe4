import Foundation
import XCTest

/// Hostile files in a cluster directory give a clear error and exit 1 from every command — never a crash, and
/// never a lock left behind.
final class HostileCLITests: XCTestCase {
    private func leftovers(_ cluster: URL) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: cluster.path)) ?? [])
            .filter { $0.hasPrefix(".sandpiper.lock") || $0.hasSuffix(".tmp") }
    }

    func testANegativeVcpuInANodeFileIsAnErrorNotALibvirtAbort() throws {
        let root = try CLI.sandbox(self)
        let cluster = root.appendingPathComponent("Clusters/demo")
        let node = cluster.appendingPathComponent("hosts/pm1.xml")
        let xml = try String(contentsOf: node, encoding: .utf8)
        let vcpu = try XCTUnwrap(xml.range(of: "<vcpu>2</vcpu>"))
        try xml.replacingCharacters(in: vcpu, with: "<vcpu>-1</vcpu>").write(to: node, atomically: true, encoding: .utf8)
        for command in [["validate"], ["plan"], ["observe"], ["apply", "--auto-approve"], ["simulate"]] {
            let run = try CLI.run([command[0], "Clusters/demo"] + command.dropFirst(), in: root)
            XCTAssertEqual(run.status, 1, "\(command): \(run.stderr)")
            XCTAssertTrue(run.stderr.contains("Clusters/demo/hosts/pm1.xml:19:5: domain[0].vcpu: \"-1\" is not a whole number"),
                          "\(command): \(run.stderr)")
            XCTAssertEqual(leftovers(cluster), [], "\(command)")
        }
    }

    func testTheLargestSerialIsAnErrorAndLeavesNoLock() throws {
        let root = try CLI.sandbox(self)
        let cluster = root.appendingPathComponent("Clusters/demo")
        let state = """
            {"cluster": "demo", "formatVersion": 1, "journal": [], "lineage": "l-1", "serial": 9223372036854775807}
            """
        try state.write(to: cluster.appendingPathComponent("state.json"), atomically: true, encoding: .utf8)
        for command in [["observe"], ["apply", "--auto-approve"], ["plan"]] {
            let run = try CLI.run([command[0], "Clusters/demo"] + command.dropFirst(), in: root)
            XCTAssertEqual(run.status, 1, "\(command): \(run.stderr)")
            XCTAssertTrue(run.stderr.contains("serial: 9223372036854775807 is out of range"), "\(command): \(run.stderr)")
            XCTAssertEqual(leftovers(cluster), [], "\(command)")
        }
        XCTAssertEqual(try String(contentsOf: cluster.appendingPathComponent("state.json"), encoding: .utf8), state)
    }
}

final class GarbageLockCLITests: XCTestCase {
    func testForceUnlockRemovesAGarbageLockEvenWithABrokenSpec() throws {
        let root = try CLI.sandbox(self)
        let lock = root.appendingPathComponent("Clusters/demo/.sandpiper.lock")
        try Data("\u{0}\u{1}garbage".utf8).write(to: lock)
        let refused = try CLI.run(["observe", "Clusters/demo"], in: root)
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains("the lock file is not a Sandpiper lock"), refused.stderr)
        let id = try XCTUnwrap(refused.stderr.components(separatedBy: "sandpiper force-unlock ").dropFirst().first?
            .split(separator: " ").first.map(String.init))
        XCTAssertTrue(id.hasPrefix("damaged-"), id)
        // The run that died may have died over a broken spec: force-unlock does not need a valid one.
        let spec = root.appendingPathComponent("Clusters/demo/cluster.yaml")
        let good = try String(contentsOf: spec, encoding: .utf8)
        try (good + "\nbogus: [").write(to: spec, atomically: true, encoding: .utf8)
        let wrong = try CLI.run(["force-unlock", "damaged-0000000000000000", "Clusters/demo"], in: root)
        XCTAssertEqual(wrong.status, 1)
        XCTAssertTrue(FileManager.default.fileExists(atPath: lock.path))
        let unlock = try CLI.run(["force-unlock", id, "Clusters/demo"], in: root)
        XCTAssertEqual(unlock.status, 0, unlock.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: lock.path))
        try good.write(to: spec, atomically: true, encoding: .utf8)
        let observe = try CLI.run(["observe", "Clusters/demo"], in: root)
        XCTAssertEqual(observe.status, 0, observe.stderr)
    }
}
