import Foundation
import XCTest

/// The human output of `plan`, `show` and `observe` (PlanRenderer and the observe table) compared with files under
/// Tests/SandpiperCLITests/Golden/. Plan ids and digests (hex runs of 12 or more) are masked as <hex>, so a
/// change in how ids are computed does not churn the files. After an intended change of the output, rewrite them
/// with `SANDPIPER_UPDATE_GOLDEN=1 swift test --filter GoldenOutputTests` and review the diff.
final class GoldenOutputTests: XCTestCase {
    static let goldenDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Golden")

    static func masked(_ text: String) -> String {
        text.replacingOccurrences(of: "[0-9a-f]{12,}", with: "<hex>", options: .regularExpression)
    }

    func assertGolden(_ output: String, _ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let url = Self.goldenDirectory.appendingPathComponent(name)
        let actual = Self.masked(output)
        if ProcessInfo.processInfo.environment["SANDPIPER_UPDATE_GOLDEN"] == "1" {
            try FileManager.default.createDirectory(at: Self.goldenDirectory, withIntermediateDirectories: true)
            try actual.write(to: url, atomically: true, encoding: .utf8)
            return
        }
        let expected = try String(contentsOf: url, encoding: .utf8)
        guard actual != expected else { return }
        let a = actual.components(separatedBy: "\n"), e = expected.components(separatedBy: "\n")
        let first = zip(a, e).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(a.count, e.count)
        XCTFail("""
            \(name) differs from the golden file at line \(first + 1):
              golden: \(first < e.count ? e[first] : "<end>")
              actual: \(first < a.count ? a[first] : "<end>")
            (SANDPIPER_UPDATE_GOLDEN=1 rewrites the golden files after an intended change)
            """, file: file, line: line)
    }

    func run(_ arguments: [String], in root: URL) throws -> String {
        let r = try CLI.run(arguments, in: root)
        XCTAssertEqual(r.status, 0, "sandpiper \(arguments.joined(separator: " ")): \(r.stderr)")
        return r.stdout
    }

    func testDemoPlanShowAndObserve() throws {
        let root = try CLI.sandbox(self)
        // The end of the trace: pm2's sustained hotspot, relieved by one move.
        let plan = try run(["plan", "Clusters/demo"], in: root)
        try assertGolden(plan, "plan-demo.txt")
        // `show` renders the saved plan as `plan` printed it, without the "Saved plan to" line.
        let plans = try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("Clusters/demo/plans").path)
        XCTAssertEqual(plans.count, 1)
        let show = try run(["show", "Clusters/demo/plans/\(try XCTUnwrap(plans.first))"], in: root)
        try assertGolden(show, "show-demo.txt")
        XCTAssertTrue(plan.hasPrefix(show), "show prints what plan printed")
        // t=60 s: the transient spike on pm2 is no hotspot; only the tunes remain.
        try assertGolden(try run(["plan", "Clusters/demo", "--at", "60"], in: root), "plan-demo-at-60.txt")
        // Two hotspots no move can fix: the Unresolved section.
        try assertGolden(try run(["plan", "Clusters/overload"], in: root), "plan-overload.txt")

        let observe = try run(["observe", "Clusters/demo"], in: root)
        try assertGolden(observe, "observe-demo.txt")
        XCTAssertFalse(FileManager.default.fileExists(atPath: root.appendingPathComponent("Clusters/demo/.samples").path),
                       "observe stores no sample windows")
    }

    func testMaskingKeepsNumbersAndHidesIds() {
        XCTAssertEqual(Self.masked("plan 6b810243714d for demo, VSR 0.8437e-3, 4096 MiB"),
                       "plan <hex> for demo, VSR 0.8437e-3, 4096 MiB")
    }
}
