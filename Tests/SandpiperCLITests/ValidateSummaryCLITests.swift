import Foundation
import XCTest

/// `validate`'s summary line counts in English ("1 group", "3 hosts"), judged against the counts `--json` reports.
final class ValidateSummaryCLITests: XCTestCase {
    func testSummaryLineMatchesTheJSONCountsWithSingulars() throws {
        var sawSingular = false
        for name in ["demo", "memory-pressure", "balance"] {
            let json = try CLI.run(["validate", "Clusters/\(name)", "--json"], in: CLI.repositoryRoot)
            XCTAssertEqual(json.status, 0, json.stderr)
            let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
            let summary = try XCTUnwrap(object?["summary"] as? [String: Any])
            func noun(_ key: String, _ word: String) -> String {
                let n = summary[key] as? Int ?? -1
                if n == 1 { sawSingular = true }
                return "\(n) \(word)\(n == 1 ? "" : "s")"
            }
            let expected = "\(name): valid (policy \(summary["policy"] as? String ?? "?"), \(noun("hosts", "host")), "
                + "\(noun("vms", "VM")), \(noun("groups", "group")))"
            let human = try CLI.run(["validate", "Clusters/\(name)"], in: CLI.repositoryRoot)
            XCTAssertEqual(human.status, 0, human.stderr)
            XCTAssertEqual(human.stdout.split(separator: "\n").first.map(String.init), expected)
        }
        XCTAssertTrue(sawSingular, "no bundled cluster exercised a count of 1")
    }
}
