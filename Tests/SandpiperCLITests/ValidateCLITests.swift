import Foundation
import SandpiperModel
import XCTest

final class ValidateCLITests: XCTestCase {
    func testBundledClustersValidate() throws {
        for name in ["demo", "paper-3pm"] {
            let run = try CLI.run(["validate", "Clusters/\(name)"], in: CLI.repositoryRoot)
            XCTAssertEqual(run.status, 0, run.stderr)
            XCTAssertTrue(run.stdout.hasPrefix("\(name): valid"), run.stdout)
        }
    }

    func testInvalidSpecExitsOneWithEveryLocatedError() throws {
        let root = try CLI.sandbox(self)
        let spec = root.appendingPathComponent("Clusters/demo/cluster.yaml")
        var text = try String(contentsOf: spec, encoding: .utf8)
        text = text.replacingOccurrences(of: "memory: 4GiB\n    sla: bronze", with: "memory: 4 GB\n    sla: bronze")
        text = text.replacingOccurrences(of: "sla: gold\n    template", with: "sla: platinum\n    template")
        try text.write(to: spec, atomically: true, encoding: .utf8)

        let run = try CLI.run(["validate", "Clusters/demo"], in: root)
        XCTAssertEqual(run.status, 1)
        XCTAssertEqual(run.stdout, "")
        let lines = run.stderr.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains { $0.hasPrefix("error: Clusters/demo/cluster.yaml:") && $0.contains(": vms[0].sla: unknown SLA \"platinum\"") }, run.stderr)
        XCTAssertTrue(lines.contains { $0.contains(": vms[3].memory: \"4 GB\" is not a size") }, run.stderr)

        let json = try CLI.run(["validate", "Clusters/demo", "--json"], in: root)
        XCTAssertEqual(json.status, 1)
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(object["formatVersion"] as? Int, 1)
        XCTAssertEqual(object["valid"] as? Bool, false)
        XCTAssertGreaterThanOrEqual((object["errors"] as? [[String: Any]])?.count ?? 0, 2)
    }

    func testUsageErrorsAreNotCrashes() throws {
        let missing = try CLI.run(["validate"], in: CLI.repositoryRoot)
        XCTAssertEqual(missing.status, 64, "argument errors use the usage exit code")
        let nowhere = try CLI.run(["validate", "/nonexistent"], in: CLI.repositoryRoot)
        XCTAssertEqual(nowhere.status, 1)
        XCTAssertTrue(nowhere.stderr.contains("/nonexistent/cluster.yaml: no such file")
                      || nowhere.stderr.contains("/nonexistent: no such file"), nowhere.stderr)
    }
}
