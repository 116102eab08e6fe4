import Foundation
import XCTest

/// `apply` killed with SIGKILL at any point loses nothing: state.json stays valid, the journal shows what was
/// started, the killed run's lock names it, and the next apply is not blocked by the journal. Test-driver hosts
/// start from their XML again in every process, so convergence on a real fleet after a kill is tested on real
/// daemons and a real guest instead (QemuCrashTests).
final class CrashSafetyTests: XCTestCase {
    func testKillDashNineDuringApplyLeavesAValidStateAndALockToForceUnlock() throws {
        let root = try CLI.sandbox(self)
        // Kill at several points: before any state is written, while actions run (journaled as started, not
        // finished), and between outcomes.
        let points: [(String, ([String]) -> Bool)] = [
            ("at start", { _ in true }),
            ("during actions", { $0.contains("started") && !$0.contains("done") }),
            ("between outcomes", { $0.filter { $0 == "done" }.count == 2 }),
        ]
        for (label, ready) in points {
            let state = root.appendingPathComponent("Clusters/demo/state.json")
            try? FileManager.default.removeItem(at: state)
            try? FileManager.default.removeItem(at: root.appendingPathComponent("Clusters/demo/.sandpiper.lock"))

            let process = Process()
            process.executableURL = CLI.binary
            process.arguments = ["apply", "Clusters/demo", "--auto-approve"]
            process.currentDirectoryURL = root
            var env = ProcessInfo.processInfo.environment
            env["CI"] = "true"
            env["SANDPIPER_APPLY_PAUSE_MS"] = "400"
            process.environment = env
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            // Wait (bounded) until the journal shows the point to kill at.
            let deadline = Date().addingTimeInterval(20)
            while Date() < deadline {
                let statuses = ((try? JSONSerialization.jsonObject(with: Data(contentsOf: state))) as? [String: Any])
                    .flatMap { $0["journal"] as? [[String: Any]] }?.compactMap { $0["status"] as? String } ?? []
                if label == "at start" || ready(statuses) { break }
                Thread.sleep(forTimeInterval: 0.01)
            }
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            XCTAssertEqual(process.terminationReason, .uncaughtSignal, "apply should still be running \(label)")

            // The state file, if the run got that far, is complete JSON with a coherent journal.
            if FileManager.default.fileExists(atPath: state.path) {
                let object = try JSONSerialization.jsonObject(with: Data(contentsOf: state)) as! [String: Any]
                XCTAssertEqual(object["formatVersion"] as? Int, 1)
                let journal = object["journal"] as? [[String: Any]] ?? []
                let statuses = journal.compactMap { $0["status"] as? String }
                XCTAssertFalse(statuses.contains("failed"), "a kill is not a failure: \(statuses)")
                // Every action is journaled as started before anything else is said about it.
                var started = Set<String>()
                for entry in journal {
                    let id = entry["actionID"] as! String
                    if entry["status"] as? String == "started" { started.insert(id) }
                    else { XCTAssertTrue(started.contains(id), "action \(id) finished without being started") }
                }
            }
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("Clusters/demo").path)
            XCTAssertTrue(leftovers.filter { $0.hasSuffix(".tmp") }.count <= 1)

            // The lock of the killed run (if it got that far) names it; force-unlock is the documented way out.
            let lockURL = root.appendingPathComponent("Clusters/demo/.sandpiper.lock")
            if FileManager.default.fileExists(atPath: lockURL.path) {
                let blocked = try CLI.run(["apply", "Clusters/demo", "--auto-approve"], in: root)
                XCTAssertEqual(blocked.status, 1)
                XCTAssertTrue(blocked.stderr.contains("the cluster is locked: apply by"), blocked.stderr)
                let lockData = try Data(contentsOf: lockURL)
                let lockID = (try JSONSerialization.jsonObject(with: lockData) as! [String: Any])["id"] as! String
                XCTAssertTrue(blocked.stderr.contains(lockID))
                let unlock = try CLI.run(["force-unlock", lockID, "Clusters/demo"], in: root)
                XCTAssertEqual(unlock.status, 0, unlock.stderr)
            } else {
                XCTAssertEqual(label, "at start", "the lock must exist once the journal has entries")
            }

            // The next run is not held back by the killed run's journal: it plans and completes.
            let plan = try CLI.run(["plan", "Clusters/demo", "--detailed-exitcode"], in: root)
            XCTAssertEqual(plan.status, 2, plan.stderr)
            let rerun = try CLI.run(["apply", "Clusters/demo", "--auto-approve"], in: root)
            XCTAssertEqual(rerun.status, 0, rerun.stdout + rerun.stderr)
            XCTAssertTrue(rerun.stdout.contains("Apply complete"), rerun.stdout)
            // Temp files a killed run left (state or lock) are gone once a run has completed.
            let after = try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("Clusters/demo").path)
            XCTAssertEqual(after.filter { $0.hasSuffix(".tmp") }, [], label)
        }
    }
}
