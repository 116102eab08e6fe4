import Foundation
import XCTest

/// `plan --out F` says "Apply it with: sandpiper apply F": that must work from wherever F was saved.
final class PlanLocationCLITests: XCTestCase {
    func testAPlanSavedOutsideTheClusterAppliesFromTheRepositoryAndFromItsOwnDirectory() throws {
        let root = try CLI.sandbox(self)
        let elsewhere = FileManager.default.temporaryDirectory.appendingPathComponent("sandpiper-plans-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: elsewhere, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: elsewhere) }

        // Saved in the repository root: found above the plan file.
        let plan = try CLI.run(["plan", "Clusters/demo", "--out", "p1.json"], in: root)
        XCTAssertEqual(plan.status, 0, plan.stderr)
        XCTAssertTrue(plan.stdout.contains("sandpiper apply p1.json"), plan.stdout)
        let applied = try CLI.run(["apply", "p1.json", "--json"], in: root)
        XCTAssertEqual(applied.status, 0, applied.stdout + applied.stderr)
        let report = try JSONSerialization.jsonObject(with: Data(applied.stdout.utf8)) as? [String: Any]
        XCTAssertEqual(report?["succeeded"] as? Bool, true)
        let outcomes = report?["outcomes"] as? [[String: Any]] ?? []
        XCTAssertTrue(outcomes.contains { $0["kind"] as? String == "migrate" && $0["mode"] as? String == "cold" },
                      applied.stdout)

        // Saved outside the repository: found above the current directory.
        let again = try CLI.run(["plan", "Clusters/demo", "--out", elsewhere.appendingPathComponent("p2.json").path],
                                in: root)
        XCTAssertEqual(again.status, 0, again.stderr)
        let fromRepo = try CLI.run(["apply", elsewhere.appendingPathComponent("p2.json").path], in: root)
        // Nothing left to do after the first apply, or stale: either way it found the cluster.
        XCTAssertFalse(fromRepo.stderr.contains("cannot find"), fromRepo.stderr)
        XCTAssertFalse(fromRepo.stderr.contains("no such file"), fromRepo.stderr)

        // Neither above the plan nor above the current directory: the error says how to go on.
        let lost = try CLI.run(["apply", "p2.json"], in: elsewhere)
        XCTAssertEqual(lost.status, 1)
        XCTAssertTrue(lost.stderr.contains("cannot find cluster demo (Clusters/demo in its repository)"), lost.stderr)
        XCTAssertTrue(lost.stderr.contains("--cluster"), lost.stderr)
        XCTAssertFalse(lost.stderr.contains("cluster.yaml: no such file"), lost.stderr)
        // --cluster overrides.
        let forced = try CLI.run(["apply", "p2.json", "--cluster", root.appendingPathComponent("Clusters/demo").path],
                                 in: elsewhere)
        XCTAssertFalse(forced.stderr.contains("cannot find"), forced.stderr)
    }
}
