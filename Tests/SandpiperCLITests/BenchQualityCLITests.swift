import Foundation
import XCTest

/// `bench quality --fleets F` with a file it cannot use: a clear message naming the file, exit 1.
final class BenchQualityCLITests: XCTestCase {
    func testMissingFleetsFileIsNamedPlainly() throws {
        let missing = FileManager.default.temporaryDirectory.appendingPathComponent("no-fleets-\(UUID().uuidString).json").path
        let r = try CLI.run(["bench", "quality", "--fleets", missing], timeout: 60)
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("\(missing): cannot read quality fleets: no such file"), r.stderr)
        XCTAssertFalse(r.stderr.contains("NSCocoaErrorDomain"), r.stderr)
    }

    func testMalformedFleetsFileNamesTheField() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("bad-fleets-\(UUID().uuidString).json")
        try Data(#"{"formatVersion": 1, "fleets": [{"name": 3}]}"#.utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let r = try CLI.run(["bench", "quality", "--fleets", file.path, "--json"], timeout: 60)
        XCTAssertEqual(r.status, 1, r.stderr)
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        XCTAssertEqual(json?["ok"] as? Bool, false)
        let error = json?["error"] as? String ?? ""
        XCTAssertTrue(error.contains("not a fleets file (fleets[0]"), error)
        XCTAssertFalse(error.contains("DecodingError"), error)
    }
}
