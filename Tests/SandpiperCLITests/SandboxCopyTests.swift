import Foundation
import XCTest
import SandpiperTestSupport

/// A checkout where an operator followed the README (plan, apply, run on the bundled clusters) holds git-ignored
/// run artefacts; the tests' sandboxes must start from the bundled spec without them, or `swift test` fails on
/// that machine (a stale state.json lineage, extra saved plans, resumed sample windows, a held lock).
final class SandboxCopyTests: XCTestCase {
    func testSandboxLeavesRunArtefactsBehind() throws {
        let fm = FileManager.default
        let source = fm.temporaryDirectory.appendingPathComponent("sandpiper-src-\(UUID().uuidString)")
        defer { try? fm.removeItem(at: source) }
        let files = ["Clusters/x/cluster.yaml", "Clusters/x/templates/t.xml", "Clusters/x/hosts/pm1.xml",
                     "Policies/default.yaml",
                     "Clusters/x/state.json", "Clusters/x/plans/abc.json", "Clusters/x/.samples/windows.json",
                     "Clusters/x/.sandpiper.lock", "Clusters/x/.sandpiper.lock.42.id.tmp"]
        for file in files {
            let url = source.appendingPathComponent(file)
            try fm.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data("x".utf8).write(to: url)
        }
        let root = try CLI.sandbox(self, from: source)
        for kept in files.prefix(4) {
            XCTAssertTrue(fm.fileExists(atPath: root.appendingPathComponent(kept).path), kept)
        }
        for dropped in ["Clusters/x/state.json", "Clusters/x/plans", "Clusters/x/.samples", "Clusters/x/.sandpiper.lock",
                        "Clusters/x/.sandpiper.lock.42.id.tmp"] {
            XCTAssertFalse(fm.fileExists(atPath: root.appendingPathComponent(dropped).path), dropped)
        }
        XCTAssertTrue(fm.fileExists(atPath: source.appendingPathComponent("Clusters/x/state.json").path),
                      "the source checkout is left as it was")
    }
}
