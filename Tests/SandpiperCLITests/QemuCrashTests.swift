import Foundation
import SandpiperLibvirt
import SandpiperTestSupport
import XCTest

/// `sandpiper apply` killed with SIGKILL in the middle of a live migration between two real libvirtd/QEMU
/// daemons: the state file stays valid, and the next apply converges on the real fleet (the guest ends up
/// running on its pinned host exactly once).
final class QemuCrashTests: XCTestCase {
    func testKillDuringLiveMigrationThenConverge() throws {
        if let reason = QemuLab.unavailableReason() { throw XCTSkip(reason) }
        let lab = try QemuLab()
        var cleanup: [LibvirtConnection] = []
        defer { lab.teardown(domain: "tiny", connections: cleanup) }
        try lab.startDaemon("A", hostUUID: "55555555-5555-4555-8555-555555555555", migrationPortMin: 49800)
        try lab.startDaemon("B", hostUUID: "66666666-6666-4666-8666-666666666666", migrationPortMin: 49950)
        let a = try lab.connect("A"), b = try lab.connect("B")
        cleanup += [a, b]
        _ = try a.define(xml: QemuLab.tinyXML())
        try a.start("tiny")

        let root = try CLI.sandbox(self)
        let dir = try lab.writeCluster(root: root)

        // Start the apply and kill it as soon as the migration is journaled as started.
        let process = Process()
        process.executableURL = CLI.binary
        process.arguments = ["apply", "Clusters/lab", "--auto-approve"]
        process.currentDirectoryURL = root
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let state = dir.appendingPathComponent("state.json")
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if let text = try? String(contentsOf: state, encoding: .utf8), text.contains("\"started\"") { break }
            Thread.sleep(forTimeInterval: 0.005)
        }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()

        // The state file is whole and says the migration started.
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: state)) as! [String: Any]
        let journal = object["journal"] as? [[String: Any]] ?? []
        XCTAssertTrue(journal.contains { $0["status"] as? String == "started" && ($0["summary"] as? String ?? "").contains("migrate tiny") },
                      "\(journal)")
        try? FileManager.default.removeItem(at: dir.appendingPathComponent(".sandpiper.lock"))

        // Whatever libvirt did with the interrupted job, the next runs converge: tiny runs once, on b.
        var last = Run(status: -1, stdout: "", stderr: "")
        for _ in 0..<3 {
            last = try CLI.run(["apply", "Clusters/lab", "--auto-approve"], in: root)
            if ProcessInfo.processInfo.environment["SANDPIPER_DEBUG_CRASH"] != nil { print(last.stdout, last.stderr) }
            if last.status == 0 && last.stdout.contains("Nothing to apply") { break }
            Thread.sleep(forTimeInterval: 1)
        }
        XCTAssertEqual(try b.domain(named: "tiny").state, .running, last.stdout + last.stderr)
        XCTAssertNil(try a.domainIfExists(named: "tiny").flatMap { $0.state == .running ? $0 : nil },
                     "tiny must not run on a as well")
        let plan = try CLI.run(["plan", "Clusters/lab", "--detailed-exitcode"], in: root)
        XCTAssertEqual(plan.status, 0, plan.stdout + plan.stderr)
    }
}
